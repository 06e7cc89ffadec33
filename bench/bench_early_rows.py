"""Seconds per grid point when most rows stop early (as in the safety basin), with and without the batch
shrinking to its running rows (`fastdecode.static_greedy_generate`, `shrink=`), on one CUDA GPU.

In the basin an aligned model refuses within its first tokens and early stop ends those rows, while a few
rows answer at length. This benchmark makes that happen on a random Llama-2-7B-shaped model (bf16, prompts of
random token ids) and times one grid point (every prompt, one batch) four ways:

  all_rows     every row decodes --new-tokens tokens (forced length): the cost of a point outside the basin;
  early_whole  --early-share of the rows stop within --early-after tokens, the batch keeps its shape to the end;
  early_shrink the same rows stop, and the batch shrinks to its running rows (the engine's default);
  long_alone   only the rows that run long, as a batch of their own: what those rows cost by themselves.

How rows are made to stop: the all_rows run gives every row's greedy tokens; the first rows (1 - share) are
the long rows; every other row gets one of its first --early-after tokens that no long row ever emits as a
stop token (an EOS id of the model), so it ends at that token's first appearance or earlier.

Checks (a failed one makes the script exit non-zero): every output of early_whole and early_shrink equals
the all_rows output of its row cut at its stop token, token for token; the two early runs' outputs are equal;
the share of rows that stopped within --early-after tokens is at least --early-share minus one row's share.

    PYTHONPATH=src python3 bench/bench_early_rows.py --out early-rows.json

--smoke runs the same on a tiny model in seconds, on the CPU when there is no GPU (the step is then called
directly instead of being replayed as a CUDA graph):

    PYTHONPATH=src python3 bench/bench_early_rows.py --smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics

import torch

from bench_generation import IdTokenizer, build_model, log, timed
from checks import Checks

SMOKE = {"layers": 2, "hidden": 64, "intermediate": 128, "heads": 4, "vocab": 512, "prompts": 20, "prompt_len": 12}
SMOKE |= {"new_tokens": 48, "early_after": 4, "runs": 1}
PAD = 2


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--prompts", type=int, default=80, help="prompts of a point, decoded as one batch")
    parser.add_argument("--prompt-len", type=int, default=160)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--early-share", type=float, default=0.95, help="share of the rows that stop early")
    parser.add_argument("--early-after", type=int, default=16, help="early rows stop within this many tokens")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per way (the median is reported)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny model, seconds; on the CPU when there is no GPU")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def stop_tokens(full: list[list[int]], long_rows: int, early_after: int) -> dict[int, int]:
    """A stop token for each early row: one of its first `early_after` tokens that no long row emits."""
    emitted_by_long = {t for row in full[:long_rows] for t in row} | {PAD}
    stops = {}
    for r, row in enumerate(full[long_rows:], long_rows):
        token = next((t for t in row[:early_after] if t not in emitted_by_long), None)
        if token is not None:
            stops[r] = token
    return stops


def expected_output(row: list[int], stops: set[int]) -> list[int]:
    """A row's all_rows tokens cut after the first stop token (EOS is kept, as the engines keep it)."""
    end = next((i for i, t in enumerate(row) if t in stops), len(row) - 1)
    return row[: end + 1]


def first_differences(outputs: list[list[int]], expected: list[list[int]]) -> dict[int, int]:
    """Row -> index of the first token where an output parts from the expected one (rows that differ only)."""
    return {
        row: next((i for i, (x, y) in enumerate(zip(o, e)) if x != y), min(len(o), len(e)))
        for row, (o, e) in enumerate(zip(outputs, expected, strict=True))
        if o != e
    }


def main() -> None:
    args = parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        raise SystemExit("this benchmark needs a CUDA GPU (--smoke runs on the CPU)")
    from safety_landscape.fastdecode import static_greedy_generate

    checks, n = Checks(), args.new_tokens
    results = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "args": vars(args),
    }
    model, build_s = timed(lambda: build_model(args, device).to(getattr(torch, args.dtype)))
    log(f"model built on the {device} in {build_s:.1f} s")
    generator = torch.Generator().manual_seed(args.seed)
    prompts = torch.randint(3, args.vocab, (args.prompts, args.prompt_len), generator=generator).tolist()
    tokenizer = IdTokenizer(eos=PAD, pad=PAD)

    def run(name: str, ids, min_new_tokens: int, shrink: bool) -> list[list[int]]:
        def generate():
            return static_greedy_generate(model, tokenizer, ids, n, len(ids), min_new_tokens=min_new_tokens, shrink=shrink)

        first = generate()  # warm-up
        seconds, outputs = [], None
        for _ in range(args.runs):
            outputs, s = timed(generate)
            seconds.append(s)
        results[name] = {"run_seconds": seconds, "seconds": statistics.median(seconds), "rows": len(ids)}
        results[name]["same_outputs_every_run"] = outputs == first
        log(f"{name}: {len(ids)} rows in {statistics.median(seconds):.3f} s (runs {[round(s, 3) for s in seconds]})")
        return [[int(t) for t in o.text.split()] for o in outputs]

    full = run("all_rows", prompts, n, shrink=True)
    long_rows = max(1, round(args.prompts * (1 - args.early_share)))
    stops = stop_tokens(full, long_rows, args.early_after)
    model.generation_config.eos_token_id = sorted(stops.values())
    expected = [expected_output(row, set(stops.values())) for row in full]
    early_whole = run("early_whole", prompts, 0, shrink=False)
    early_shrink = run("early_shrink", prompts, 0, shrink=True)
    run("long_alone", prompts[:long_rows], 0, shrink=True)

    stopped_early = sum(len(e) <= args.early_after for e in expected)
    results["rows"] = {"long": long_rows, "with_a_stop_token": len(stops), "stopped_within_early_after": stopped_early}
    checks.check(
        stopped_early >= args.prompts * args.early_share - 1,
        f"{stopped_early} of {args.prompts} rows stop within {args.early_after} tokens (asked: {args.early_share:.0%})",
    )
    for name, outputs in (("early_whole", early_whole), ("early_shrink", early_shrink)):
        same = sum(o == e for o, e in zip(outputs, expected, strict=True))
        checks.check(
            same == len(expected), f"{name}: {same} of {len(expected)} outputs equal the all_rows output cut at its stop"
        )
    checks.check(early_whole == early_shrink, "early_shrink gives the same outputs as early_whole")
    seconds = {name: results[name]["seconds"] for name in ("all_rows", "early_whole", "early_shrink", "long_alone")}
    results["summary"] = {
        "seconds_per_point": seconds,
        "early_whole_over_all_rows": seconds["early_whole"] / seconds["all_rows"],
        "early_shrink_over_all_rows": seconds["early_shrink"] / seconds["all_rows"],
        "speedup_shrink_over_whole": seconds["early_whole"] / seconds["early_shrink"],
        "early_shrink_over_long_alone": seconds["early_shrink"] / seconds["long_alone"],
    }
    results["checks_failed"] = checks.failed
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    log(json.dumps(results["summary"], indent=2))
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
