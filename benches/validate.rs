//! Validation benchmarks: reading the public trace file (4,520 rows), the whole
//! uncalibrated validation of it (map, predict with the roofline engine, statistics), and one
//! calibration fit of the kind the hold-out runs hundreds of (the RTX 4090's llama.cpp prompt
//! rows: a roofline fit, and the same fit refined through the simulator; their ratio is what
//! the simulator's hold-out costs over the roofline's per fit), and one multi-GPU llama.cpp
//! prompt predicted with the stack's host launch queues and without them (their ratio is what
//! the host schedule adds to a prediction).
//! Target: the full validation under 2 s. Run: `cargo bench --bench validate`.

use llmforge::validate::mapping::Maps;
use llmforge::validate::predict::{self, Engine};
use llmforge::validate::{self, Library, Options, calibrate, traces};

const PUBLIC: &str = include_str!("../traces/public-llm-inference.csv");

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 10)]
fn read_public_traces() -> usize {
    traces::parse(divan::black_box(PUBLIC), "public.csv")
        .unwrap()
        .rows
        .len()
}

#[divan::bench(sample_count = 5)]
fn validate_public_traces(b: divan::Bencher) {
    let t = traces::parse(PUBLIC, "public.csv").unwrap();
    let maps = Maps::builtin().unwrap();
    let opts = Options {
        engine: Engine::Roofline,
        holdout: Vec::new(),
        progress: Default::default(),
    };
    b.bench(|| {
        let mut lib = Library::new(Vec::new());
        validate::validate(divan::black_box(&t), &maps, &mut lib, &opts).counts
    });
}

/// One prefill fit (the parameters `calibrate --phase prefill` frees) of the RTX 4090's
/// llama.cpp prompt rows, through each engine.
#[divan::bench(args = [Engine::Roofline, Engine::Sim], sample_count = 3)]
fn calibrate_prefill_fit(b: divan::Bencher, engine: Engine) {
    let t = traces::parse(PUBLIC, "public.csv").unwrap();
    let maps = Maps::builtin().unwrap();
    let mut lib = Library::new(Vec::new());
    let (ready, _) = validate::ready_cases(&t, &maps, &mut lib);
    let points = validate::points_where(&t, &ready, &lib, |c| {
        c.substrate == "rtx-4090" && c.stack == "llama.cpp" && calibrate::fit_phase(c) == "prefill"
    });
    assert!(points.len() >= 8, "{} rows", points.len());
    let start = points[0].substrate.efficiency;
    let free = calibrate::free_for(Some("prefill"));
    b.bench(|| calibrate::fit_some(divan::black_box(&points), start, engine, free).map(|f| f.n));
}

/// Llama-3-70B Q4_K_M over four A40s under llama.cpp, a 2,048-token prompt (four micro-batches
/// through four stages), through the roofline: with the host launch queues `stacks.csv`
/// states, and without them.
#[divan::bench(args = [true, false], sample_count = 20)]
fn multi_gpu_prompt_prediction(b: divan::Bencher, host: bool) {
    let text = "hardware,software,model,weights,bits_per_weight,batch,prompt_len,gen_len,metric,value,unit,source\n\
        4x NVIDIA A40,llama.cpp CUDA,Meta-Llama-3-70B,GGUF Q4_K_M,4.82,1,2048,0,pp_tokens_per_s,300,tok/s,t\n";
    let t = traces::parse(text, "bench.csv").unwrap();
    let maps = Maps::builtin().unwrap();
    let mut case = llmforge::validate::mapping::map_row(&t.rows[0], &maps).unwrap();
    assert!(case.host.is_some());
    if !host {
        case.host = None;
    }
    let model = predict::with_formats(&llmforge::model::load("llama-3-70b").unwrap(), &case);
    let sub = llmforge::substrate::load("a40", &[]).unwrap();
    b.bench(|| predict::predict(divan::black_box(&case), &model, &sub, Engine::Roofline).prefill_s);
}
