# Adaptive grids (landscape.adaptive): the main landscapes are sampled in rounds on points of their
# configured grids. A landscape's plan for a round is a checkpoint: plan<r>.json lists the round's new
# points (round 0: every initial_stride-th point), and the next plan reads their verdicts and splits the
# boxes whose corners' ASR differ, until the VISAGE estimate settles. One generation job and one judge job
# per round serve every landscape still sampling (each job loads its model once), so a run pays a job's
# start-up per round, not per round and landscape. The gathered responses are then judged by every judge
# as a full-grid landscape's would be. Rounds are files like any others, so a rerun reuses every finished
# round and every generated point.
if ADAPTIVE:

    checkpoint adaptive_plan:
        input:
            previous=lambda wc: [f"{ADAPTIVE_DIR}/{wc.landscape}/plan{int(wc.round) - 1}.json"] if int(wc.round) else [],
            judgments=lambda wc: [round_file(r, "judgments.jsonl") for r in range(int(wc.round))],
        output:
            f"{ADAPTIVE_DIR}/{{landscape}}/plan{{round}}.json",
        params:
            code=code("adaptive_plan.py"),
            settings=ADAPTIVE,
            landscape=lambda wc: wc.landscape,
            round=lambda wc: int(wc.round),
        wildcard_constraints:
            landscape="|".join(re.escape(name) for name in MAIN),
            round="[0-9]+",
        log:
            f"{RUN}/logs/adaptive/{{landscape}}/plan{{round}}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/adaptive_plan.py"

    rule adaptive_generate:
        input:
            model=subject_manifest(),
            # the main landscapes share their prompts and decoding (one variant)
            prompts=PROMPTS[MAIN[0]]["file"],
            points=[f"{RUN}/points/{name}" for name in MAIN],
            plans=lambda wc: round_plans(int(wc.round)),
        output:
            round_file("{round}", "responses.jsonl"),
        params:
            code=code("adaptive_generate.py", keywords=GENERATION["stop_on_refusal"]),
            engine_code=engine_code_digest(GENERATION["engine"]),
            landscapes=MAIN,
            # the grid and strides that chose the points (the tolerance only decides when the rounds stop)
            grid={key: value for key, value in ADAPTIVE.items() if key != "tolerance"},
            prompts=PROMPTS[MAIN[0]],
            generation=landscape_generation(LANDSCAPES[MAIN[0]]),
            cache=f"{CACHE}/responses",
            trust_remote_code=config["model"]["trust_remote_code"],
            gpu_locks=f"{CACHE}/gpu-locks",
        wildcard_constraints:
            round="[0-9]+",
        threads: config["generation"]["threads"]
        resources:
            gpu=0 if config["generation"]["device"] == "cpu" else config["generation"]["tensor_parallel_size"],
        log:
            f"{RUN}/logs/adaptive/round{{round}}/generate.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/adaptive_generate.py"

    # The headline judge's verdicts, which the next round's plans read.
    rule adaptive_judge:
        input:
            responses=[round_file("{round}", "responses.jsonl")],
            judge_model=judge_model_manifest(next(iter(JUDGES))) or [],
        output:
            round_file("{round}", "judgments.jsonl"),
        params:
            code=code("judge.py"),
            spec=JUDGES[next(iter(JUDGES))],
            judge_model=judge_model_manifest(next(iter(JUDGES))),
            cache=f"{CACHE}/judgments",
            gpu=judge_gpus(next(iter(JUDGES))),
            gpu_locks=f"{CACHE}/gpu-locks",
        wildcard_constraints:
            round="[0-9]+",
        resources:
            gpu=judge_gpus(next(iter(JUDGES))),
        log:
            f"{RUN}/logs/adaptive/round{{round}}/judge.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/judge.py"

    rule adaptive_collect:
        input:
            responses=lambda wc: [round_file(r, "responses.jsonl") for r in range(adaptive_rounds(wc.landscape))],
            plan=lambda wc: f"{ADAPTIVE_DIR}/{wc.landscape}/plan{adaptive_rounds(wc.landscape)}.json",
        output:
            responses=f"{ADAPTIVE_DIR}/{{landscape}}/responses.jsonl",
            rounds=f"{ADAPTIVE_DIR}/{{landscape}}/rounds.json",
        params:
            code=code("adaptive_collect.py"),
            landscape=lambda wc: wc.landscape,
        wildcard_constraints:
            landscape="|".join(re.escape(name) for name in MAIN),
        log:
            f"{RUN}/logs/adaptive/{{landscape}}/collect.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/adaptive_collect.py"

    # Every judge on the gathered responses: the judgments the visage rule reads, in place of the judge rule's.
    rule adaptive_landscape_judge:
        input:
            responses=[f"{ADAPTIVE_DIR}/{{landscape}}/responses.jsonl"],
            judge_model=lambda wc: judge_model_manifest(wc.judge) or [],
        output:
            f"{RUN}/judgments/{{judge}}/{{landscape}}.jsonl",
        params:
            code=code("judge.py"),
            spec=lambda wc: JUDGES[wc.judge],
            judge_model=lambda wc: judge_model_manifest(wc.judge),
            cache=f"{CACHE}/judgments",
            gpu=lambda wc: judge_gpus(wc.judge),
            gpu_locks=f"{CACHE}/gpu-locks",
        wildcard_constraints:
            landscape="|".join(re.escape(name) for name in MAIN),
        resources:
            gpu=lambda wc: judge_gpus(wc.judge),
        log:
            f"{RUN}/logs/judge/{{judge}}/{{landscape}}.log",
        conda:
            "../envs/safety-landscape.yaml"
        script:
            "../scripts/judge.py"

    ruleorder: adaptive_landscape_judge > judge
