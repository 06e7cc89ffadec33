rule align_data:
    input:
        base=manifest(config["model"]["name"]),
        harmful=config["align"]["harmful_file"],
        refusals=config["align"]["refusals"],
        benign=config["align"]["benign_prompts"],
    output:
        pairs=f"{ALIGNED}/pairs.jsonl",
    params:
        code=code("align_data.py", keywords=False),
        align=config["align"],
        trust_remote_code=config["model"]["trust_remote_code"],
    threads: config["align"]["threads"]
    log:
        f"{ALIGNED}/logs/align_data.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/align_data.py"


rule align:
    input:
        base=manifest(config["model"]["name"]),
        pairs=f"{ALIGNED}/pairs.jsonl",
    output:
        model=directory(f"{ALIGNED}/model"),
        manifest=f"{ALIGNED}/manifest.json",
    params:
        code=code("align.py", keywords=False),
        align=config["align"],
        trust_remote_code=config["model"]["trust_remote_code"],
    threads: config["align"]["threads"]
    log:
        f"{ALIGNED}/logs/align.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/align.py"


rule align_eval:
    input:
        model=f"{ALIGNED}/manifest.json",
        harmful=HARMFUL["file"],
        benign=config["align"]["benign_eval_prompts"],
    output:
        report(
            f"{ALIGNED}/eval.json",
            caption="../report/align_eval.rst",
            category="Alignment",
        ),
    params:
        code=code("align_eval.py"),
        column=HARMFUL["column"],
        where=HARMFUL["where"],
        max_new_tokens=config["generation"]["max_new_tokens"],
        system_prompt=GENERATION["system_prompt"],
        trust_remote_code=config["model"]["trust_remote_code"],
    threads: 1  # runs beside the first generation jobs
    log:
        f"{ALIGNED}/logs/align_eval.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/align_eval.py"
