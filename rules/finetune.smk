# Finetune stage: build each dataset, finetune the measured model on it, keep every epoch's checkpoint.


rule finetune_data:
    input:
        model=subject_manifest(),
        harmful=config["finetune"]["harmful_file"],
        refusals=config["finetune"]["refusals"],
        pairs=lambda wc: [FT_DATASETS[wc.dataset]["file"]] if FT_DATASETS[wc.dataset]["kind"] == "jsonl" else [],
    output:
        f"{FT}/{{dataset}}/pairs.jsonl",
    params:
        code=code("finetune_data.py"),
        spec=lambda wc: FT_DATASETS[wc.dataset],
        finetune=FT_DATA_SETTINGS,
        max_new_tokens=config["generation"]["max_new_tokens"],
        system_prompt=GENERATION["system_prompt"],
        trust_remote_code=config["model"]["trust_remote_code"],
    threads: 1
    log:
        f"{FT}/logs/finetune_data/{{dataset}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/finetune_data.py"


rule finetune:
    input:
        model=subject_manifest(),
        pairs=f"{FT}/{{dataset}}/pairs.jsonl",
    output:
        models=[directory(f"{FT}/{{dataset}}/epoch{e}/model") for e in FT_EPOCHS],
        manifests=[f"{FT}/{{dataset}}/epoch{e}/manifest.json" for e in FT_EPOCHS],
        training=f"{FT}/{{dataset}}/training.json",
    params:
        code=code("finetune.py", keywords=False),
        finetune=FT_TRAINING_SETTINGS,
        system_prompt=GENERATION["system_prompt"],
        trust_remote_code=config["model"]["trust_remote_code"],
        gpu_locks=f"{CACHE}/gpu-locks",
        checkpoints=f"{CACHE}/finetune",  # every epoch and the state to resume from, beyond the outputs a failed job loses
    threads: config["finetune"]["threads"]
    resources:
        gpu=0 if config["finetune"]["device"] == "cpu" else 1,
    log:
        f"{FT}/logs/finetune/{{dataset}}.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/finetune.py"
