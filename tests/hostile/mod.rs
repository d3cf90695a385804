//! The hostile-input suite: the binary run on inputs and in situations an attacker or a
//! careless user would create. `outputs/` holds the output and concurrency cases of issue 14
//! (and the `--resume` cases of issue 18): outputs onto inputs, onto each other and onto
//! non-regular files, reused and concurrently used run directories, signals, full disks, edited
//! checkpoints.

mod outputs;
