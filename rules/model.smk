rule model:
    output:
        manifest="results/models/{model}/manifest.json",
    params:
        spec=lambda wc: MODELS[wc.model],
        convert_dir=lambda wc: f"results/models/{wc.model}/hf",
    log:
        "results/models/{model}/logs/model.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/model.py"
