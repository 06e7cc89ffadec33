"""Early stop on refusal: generation time with and without it, and proof that verdicts do not change.

Runs the HF engine on a model folder at several perturbation sizes along one random direction,
once with `stop_on_refusal` and once without, and reports seconds, tokens and keyword verdicts.

    python bench/bench_early_stop.py results/models/smollm2-135m-instruct-aligned/model --out early-stop.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from safety_landscape.decoding import render_prompts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engines import EngineOptions, HFEngine
from safety_landscape.judges import keyword_jailbroken
from safety_landscape.points import Term


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="HF model folder (safetensors)")
    parser.add_argument("--prompts", default="data/advbench/harmful_behaviors.csv")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--coefficients", default="0,0.05,0.1,0.15,0.2,0.3")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("early-stop.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prompts = pd.read_csv(args.prompts)["goal"].tolist()[: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        write_direction(
            Path(tmp) / "d1", CheckpointReader(args.model), random_source(0, "layer"), ["norm"], torch.float32, 1 << 30, {}
        )
        direction = Direction(Path(tmp) / "d1")
        engine = HFEngine(EngineOptions(args.model, "float32", "cpu"))
        ids = render_prompts(engine.tokenizer, prompts, None, True)
        rows = []
        for a in [float(x) for x in args.coefficients.split(",")]:
            engine.set_point([Term(str(direction.folder), direction.digest, a)])
            row = {"a": a}
            for stop in (False, True):
                start = time.perf_counter()
                gens = engine.generate(ids, args.max_new_tokens, len(ids), stop)
                key = "early_stop" if stop else "full"
                row[f"{key}_seconds"] = time.perf_counter() - start
                row[f"{key}_tokens"] = sum(g.num_tokens for g in gens)
                row[f"{key}_verdicts"] = [keyword_jailbroken(g.text) for g in gens]
            row["asr"] = 100 * sum(row["full_verdicts"]) / len(prompts)
            row["verdicts_equal"] = row["full_verdicts"] == row["early_stop_verdicts"]
            print(
                f"a={a:+.2f} ASR {row['asr']:5.1f}%  full {row['full_seconds']:6.1f} s {row['full_tokens']:5d} tok  "
                f"early stop {row['early_stop_seconds']:6.1f} s {row['early_stop_tokens']:5d} tok  "
                f"verdicts equal: {row['verdicts_equal']}",
                flush=True,
            )
            rows.append(row)
    total_full = sum(r["full_seconds"] for r in rows)
    total_stop = sum(r["early_stop_seconds"] for r in rows)
    summary = {
        "points": rows,
        "total_full_seconds": total_full,
        "total_early_stop_seconds": total_stop,
        "speedup": total_full / total_stop,
        "all_verdicts_equal": all(r["verdicts_equal"] for r in rows),
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"total: full {total_full:.1f} s, early stop {total_stop:.1f} s, speedup {summary['speedup']:.2f}x, "
        f"all verdicts equal: {summary['all_verdicts_equal']}"
    )


if __name__ == "__main__":
    main()
