//! The `llmforge` binary: parse arguments, call the library, render. Nothing else.

fn main() {
    println!("llmforge");
}
