rule model:
    output:
        manifest=f"{MODEL}/manifest.json",
    params:
        source=config["model"]["source"],
        gguf_file=config["model"]["gguf_file"],
        trust_remote_code=config["model"]["trust_remote_code"],
        convert_dir=f"{MODEL}/hf",
    log:
        f"{MODEL}/logs/model.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/model.py"
