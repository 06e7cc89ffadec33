"""Seconds per grid point of three ways to generate a landscape point, on one CUDA GPU.

A grid point is: set the weights, then greedy-decode every prompt with a forced length
(min_new_tokens = max_new_tokens, so EOS never ends a sequence and every point costs the worst case).
The model has the Llama-2-7B shape with random weights, built directly on the GPU; prompts are random
token ids. Measured in one run:

  reference  fp32 model; per point load_state_dict from a CPU fp32 state dict, then HF `generate` in
             batches of 4 (the paper's reference code). Only --reference-batches batches are timed and
             the mean is multiplied by the number of batches.
  eager      the project's engine (`decoding.greedy_generate`), bf16, one batch of all prompts, plus the
             weight update of `points.Perturber.set` (W = W0 + a * d for one random direction).
  static     `fastdecode.static_greedy_generate` (static cache + CUDA graph), bf16, same batch, same update.
  static_eager_attention
             the same with transformers' "eager" attention (matmul + softmax) instead of SDPA.

An engine's time is the median of --runs runs (each run is listed). Also: HBM bandwidth (device-to-device
copy), the memory-bandwidth floor of a point (weights plus the KV cache read at every decode step), and
how many outputs of `static` equal those of `eager`, as timed (each on its SDPA kernel) and with SDPA
restricted to one kernel for both (memory-efficient attention), which leaves only the cache layout.

Checks (a failed one makes the script exit non-zero): `Perturber.set` changes every perturbed tensor
and a = 0 restores every parameter bit for bit; every output of every engine has the forced length;
with SDPA held to one kernel, every output of `static` equals `eager`'s token for token.

Run from the repository root on a CUDA machine:

    PYTHONPATH=src python3 bench/bench_generation.py --out results.json

--smoke runs the same measurements and checks on a tiny model in seconds, on the GPU if there is one,
else on the CPU, where the static engines (CUDA graphs) and the output checks that need them are
skipped, and the copy bandwidth is the host memory's:

    PYTHONPATH=src python3 bench/bench_generation.py --smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from functools import partial

import torch

from checks import Checks, skipped
from shapes import llama_config

ENGINES = ("reference", "eager", "static", "static_eager_attention")
STATIC_ENGINES = ("static", "static_eager_attention")
SMOKE = {
    "layers": 2,
    "hidden": 64,
    "intermediate": 128,
    "heads": 4,
    "vocab": 512,
    "prompts": 6,
    "prompt_len": 12,
    "new_tokens": 8,
    "batch_size": 6,
    "reference_batch_size": 2,
    "reference_batches": 2,
    "runs": 2,
    "bandwidth_mib": 16,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    """(result, seconds) of fn(), with the GPU (if any) drained before and after."""
    synchronize()
    start = time.perf_counter()
    result = fn()
    synchronize()
    return result, time.perf_counter() - start


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    """Peak GPU memory allocated since the last reset; None without a GPU."""
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


class IdTokenizer:
    """Stand-in tokenizer for a random model: a sequence's text is its token ids, so outputs compare token for token."""

    def __init__(self, eos: int, pad: int):
        self.eos_token_id, self.pad_token_id = eos, pad

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return " ".join(map(str, ids))


def copy_bandwidth(device: str, mib: int, repeats: int = 20) -> float:
    """Bytes per second of a copy within `device`'s memory, counting bytes read and written."""
    src = torch.empty(mib << 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    seconds = timed(lambda: [dst.copy_(src) for _ in range(repeats)])[1]
    return 2 * src.numel() * repeats / seconds


def build_model(args, device: str):
    from transformers import LlamaForCausalLM

    shape = {"hidden": args.hidden, "intermediate": args.intermediate, "layers": args.layers, "heads": args.heads}
    config = llama_config(
        shape, vocab_size=args.vocab, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=2
    )
    torch.manual_seed(args.seed)
    with torch.device(device):
        return LlamaForCausalLM(config).eval()


def measure_reference(model, prompts, args, checks: Checks) -> dict:
    """fp32: load_state_dict from CPU per point, then HF generate in batches of args.reference_batch_size."""
    state, copy_s = timed(lambda: {k: v.to("cpu") for k, v in model.state_dict().items()})
    log(f"reference: CPU fp32 state dict made in {copy_s:.1f} s")
    load_s = [timed(partial(model.load_state_dict, state))[1] for _ in range(2)]
    del state
    log(f"reference: load_state_dict from CPU {[round(t, 2) for t in load_s]} s")
    ids = torch.tensor(prompts, device=model.device)
    size, n = args.reference_batch_size, args.new_tokens

    def batch(b: int, tokens: int):
        x = ids[b * size : (b + 1) * size]
        mask = torch.ones_like(x)
        return model.generate(
            input_ids=x, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=2
        )

    batch(0, 8)  # warm-up
    batch_s, widths = [], []
    for b in range(args.reference_batches):
        out, seconds = timed(lambda: batch(b, n))
        widths.append(out.shape[1])
        batch_s.append(seconds)
        log(f"reference: batch {b + 1}/{args.reference_batches} of {size} prompts x {n} tokens: {seconds:.2f} s")
    checks.check(
        all(w == len(prompts[0]) + n for w in widths),
        f"reference: each of the {len(widths)} timed batches is {len(prompts[0])} prompt + {n} new tokens wide (widths {widths})",
    )
    batches = -(-len(prompts) // size)
    generate_s = statistics.mean(batch_s) * batches
    return {
        "dtype": "float32",
        "batch_size": size,
        "batches_per_point": batches,
        "batches_timed": len(batch_s),
        "batch_seconds": batch_s,
        "generate_seconds_extrapolated": generate_s,
        "load_state_dict_seconds": load_s,
        "seconds_per_point": generate_s + statistics.mean(load_s),
        "note": f"generate time = mean of {len(batch_s)} timed batches x {batches} batches; plus the mean load_state_dict time",
    }


def random_direction(model, args) -> dict[str, torch.Tensor]:
    """A random direction over every parameter but the norms, in --direction-dtype, on the model's device."""
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    dtype = getattr(torch, args.direction_dtype)
    return {
        name: torch.randn(p.shape, generator=generator, device=model.device, dtype=dtype)
        for name, p in model.named_parameters()
        if "norm" not in name
    }


def measure_perturber(model, args, checks: Checks) -> dict:
    """Time Perturber.set to a = 0.1 along one random direction and back to 0; check that 0 restores bit for bit."""
    from safety_landscape.points import Perturber

    params = dict(model.named_parameters())
    before = {name: p.detach().clone() for name, p in params.items()}
    direction = random_direction(model, args)
    perturber = Perturber(model)
    first_s = timed(lambda: perturber.set([(direction, 0.1)]))[1]
    changed = sum(not torch.equal(params[name], before[name]) for name in direction)
    set_s, restore_s = [], []
    for _ in range(3):
        restore_s.append(timed(lambda: perturber.set([(direction, 0.0)]))[1])
        set_s.append(timed(lambda: perturber.set([(direction, 0.1)]))[1])
    restore_s.append(timed(lambda: perturber.set([(direction, 0.0)]))[1])
    restored = sum(torch.equal(params[name], before[name]) for name in params)
    log(f"perturber: first set {first_s:.3f} s, set {[round(t, 4) for t in set_s]} s")
    log(f"perturber: restore {[round(t, 4) for t in restore_s]} s")
    checks.check(changed == len(direction), f"perturber: a = 0.1 changed {changed} of the {len(direction)} perturbed tensors")
    checks.check(
        restored == len(params), f"perturber: a = 0 restored {restored} of the {len(params)} parameters bit for bit (torch.equal)"
    )
    return {
        "direction_dtype": args.direction_dtype,
        "tensors_perturbed": len(direction),
        "first_set_seconds_including_snapshot": first_s,
        "set_seconds": set_s,
        "restore_seconds": restore_s,
        "seconds_per_point": statistics.median(set_s),
        "all_perturbed_tensors_changed": changed == len(direction),
        "restore_bit_exact_all_tensors": restored == len(params),
    }


def measure_engine(name: str, generate, prompts, args, checks: Checks) -> tuple[dict, list]:
    n = args.new_tokens
    generate(prompts[:8], 8)  # warm-up
    reset_peak_memory()
    runs, gens = [], None
    for r in range(args.runs):
        gens, seconds = timed(lambda: generate(prompts, n))
        runs.append(seconds)
        log(f"{name}: run {r + 1}/{args.runs}: {len(prompts)} prompts x {n} tokens in {seconds:.2f} s")
    forced = sum(g.num_tokens == n and g.finish_reason == "length" for g in gens)
    checks.check(forced == len(gens), f"{name}: {forced} of {len(gens)} outputs have {n} tokens and finish reason 'length'")
    return {
        "dtype": "bfloat16",
        "batch_size": args.batch_size,
        "run_seconds": runs,
        "seconds": statistics.median(runs),
        "peak_gpu_memory_gib": peak_memory_gib(),
    }, gens


def compare(eager, static) -> dict:
    """Identical outputs of two engines (every pair of outputs, token for token) and where the others part."""
    first_diff = []
    for a, b in zip(eager, static, strict=True):
        ta, tb = a.text.split(), b.text.split()
        if ta != tb:
            first_diff.append(next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb))))
    return {
        "outputs": len(eager),
        "identical_outputs": len(eager) - len(first_diff),
        "first_differing_token_of_the_others": sorted(first_diff),
    }


def compare_on_one_kernel(model, tokenizer, prompts, args, checks: Checks) -> dict:
    """Eager and static engine with SDPA held to memory-efficient attention; every output must agree."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from safety_landscape.decoding import greedy_generate
    from safety_landscape.fastdecode import static_greedy_generate

    log("output check with SDPA restricted to memory-efficient attention for both engines")
    n = args.new_tokens
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        eager_out = greedy_generate(model, tokenizer, prompts, n, args.batch_size, min_new_tokens=n)
        static_out = static_greedy_generate(model, tokenizer, prompts, n, args.batch_size, min_new_tokens=n)
    result = compare(eager_out, static_out)
    checks.check(
        result["identical_outputs"] == result["outputs"],
        f"static vs eager, SDPA held to memory-efficient attention: {result['identical_outputs']} of {result['outputs']} "
        f"outputs identical token for token ({n} tokens each)",
    )
    return result


def bandwidth_floor(model, args, bandwidth: float) -> dict:
    """Seconds to read the weights and the KV cache at every decode step, at the measured copy bandwidth."""
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv_bytes_per_token = 2 * args.layers * args.hidden * 2  # K and V, bf16, no grouped-query attention
    n, p, b = args.new_tokens, args.prompt_len, args.prompts
    floor = sum(weight_bytes + kv_bytes_per_token * b * (p + s) for s in range(1, n + 1)) / bandwidth
    static_reads = n * (weight_bytes + kv_bytes_per_token * b * (p + n)) / bandwidth
    return {
        "weight_bytes_bf16": weight_bytes,
        "kv_bytes_per_token": kv_bytes_per_token,
        "formula": "sum over decode steps s=1..N of (weight bytes + kv_bytes_per_token * batch * (prompt_len + s)) / bandwidth",
        "seconds": floor,
        "static_cache_full_length_seconds": static_reads,
        "static_cache_note": "the static engine attends over the whole preallocated cache (prompt_len + N, masked) at every step",
    }


def summarize(results: dict, floor: dict) -> dict:
    """Seconds per point, speedups, fractions of the floor, projections and output matches."""
    summary = {}
    for name in ENGINES:
        if name in results:
            summary[f"{name}_seconds_per_point"] = results[name]["seconds_per_point"]
    for name in ENGINES[1:]:
        if "reference" in results and name in results:
            reference_s = results["reference"]["seconds_per_point"]
            summary[f"speedup_reference_over_{name}"] = reference_s / results[name]["seconds_per_point"]
        if name in results:
            summary[f"fraction_of_floor_{name}"] = floor["seconds"] / results[name]["seconds"]
    fastest = min((n for n in ENGINES[1:] if n in results), key=lambda n: results[n]["seconds_per_point"], default=None)
    if fastest:
        summary["fastest_engine"] = fastest
        summary["projected_1d_21_points_seconds"] = 21 * results[fastest]["seconds_per_point"]
        summary["projected_2d_441_points_seconds"] = 441 * results[fastest]["seconds_per_point"]
    summary["perturber_set_seconds"] = results["perturber"]["seconds_per_point"]
    for key in ("static_vs_eager_outputs", "static_eager_attention_vs_eager_outputs", "static_vs_eager_outputs_same_sdpa_kernel"):
        if key in results:
            summary[f"identical_{key}"] = results[key]["identical_outputs"]
    return summary


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--prompts", type=int, default=80)
    parser.add_argument("--prompt-len", type=int, default=160)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=80, help="batch of the eager and static engines")
    parser.add_argument("--reference-batch-size", type=int, default=4)
    parser.add_argument("--reference-batches", type=int, default=2, help="reference batches timed (then extrapolated)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of the bf16 engines (their median is reported)")
    parser.add_argument("--direction-dtype", default="float32", help="dtype of the random direction (the project default)")
    parser.add_argument("--bandwidth-mib", type=int, default=4096, help="size of the copy that measures memory bandwidth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny model, seconds; on the CPU when there is no GPU")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def engines_to_run(args) -> set[str]:
    """The engines asked for; without a GPU (smoke mode only) the static ones are skipped, and said so."""
    engines = set(args.engines.split(","))
    if torch.cuda.is_available():
        return engines
    if not args.smoke:
        raise SystemExit("this benchmark needs a CUDA GPU (--smoke runs on the CPU)")
    if engines & set(STATIC_ENGINES):
        skipped(
            " and ".join(sorted(engines & set(STATIC_ENGINES))) + " engines, and every output comparison with them",
            "fastdecode.static_greedy_generate replays its decode step as a CUDA graph; no CUDA GPU here",
        )
    return engines - set(STATIC_ENGINES)


def measure_engines(model, prompts, args, engines: set[str], results: dict, save, checks: Checks) -> None:
    """Time each bf16 engine asked for (plus the weight update), then compare the static engines' outputs with eager's."""
    from safety_landscape.decoding import greedy_generate
    from safety_landscape.fastdecode import static_greedy_generate

    update_s = results["perturber"]["seconds_per_point"]
    tokenizer = IdTokenizer(eos=2, pad=2)
    outputs = {}
    variants = (("eager", greedy_generate, "sdpa"), ("static", static_greedy_generate, "sdpa"))
    variants += (("static_eager_attention", static_greedy_generate, "eager"),)
    for name, fn, attention in variants:
        if name in engines:
            model.set_attn_implementation(attention)
            results[name], outputs[name] = measure_engine(
                name, lambda ids, n: fn(model, tokenizer, ids, n, args.batch_size, min_new_tokens=n), prompts, args, checks
            )
            results[name]["attention"] = attention
            results[name]["seconds_per_point"] = results[name]["seconds"] + update_s
            save()
    model.set_attn_implementation("sdpa")
    for name in STATIC_ENGINES:
        if name in outputs and "eager" in outputs:
            results[f"{name}_vs_eager_outputs"] = compare(outputs["eager"], outputs[name])
            log(f"{name} vs eager, as timed: {results[f'{name}_vs_eager_outputs']['identical_outputs']} outputs identical")
    if {"eager", "static"} <= engines:
        results["static_vs_eager_outputs_same_sdpa_kernel"] = compare_on_one_kernel(model, tokenizer, prompts, args, checks)
        save()


def main() -> None:
    args = parse_args()
    engines = engines_to_run(args)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    import transformers

    checks = Checks()
    results = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "args": vars(args),
    }

    def save() -> None:  # after every measurement, so that a failure later keeps what was measured
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)

    bandwidth = copy_bandwidth(device, args.bandwidth_mib)
    results["copy_bandwidth_bytes_per_s"] = bandwidth
    log(f"{'HBM' if device == 'cuda' else 'host memory'} copy bandwidth {bandwidth / 1e12:.3f} TB/s (read + write)")

    model, build_s = timed(lambda: build_model(args, device))
    log(f"model built on the {device} in {build_s:.1f} s: {sum(p.numel() for p in model.parameters()) / 1e9:.4f} B parameters")
    generator = torch.Generator().manual_seed(args.seed)
    prompts = torch.randint(3, args.vocab, (args.prompts, args.prompt_len), generator=generator).tolist()

    if "reference" in engines:
        results["reference"] = measure_reference(model, prompts, args, checks)
        save()
    model.to(torch.bfloat16)
    torch.cuda.empty_cache()
    results["perturber"] = measure_perturber(model, args, checks)
    save()
    torch.cuda.empty_cache()
    measure_engines(model, prompts, args, engines, results, save, checks)

    floor = bandwidth_floor(model, args, bandwidth)
    results["bandwidth_floor"] = floor
    results["summary"] = summarize(results, floor)
    results["failed_checks"] = checks.failed
    save()
    log("summary: " + json.dumps(results["summary"], indent=2))
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
