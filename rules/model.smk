rule model:
    input:
        lambda wc: [MODELS[wc.model]["chat_template"]] if MODELS[wc.model].get("chat_template") else [],
    output:
        manifest="results/models/{model}/manifest.json",
    params:
        code=code("model.py"),
        spec=lambda wc: MODELS[wc.model],
        convert_dir=lambda wc: f"results/models/{wc.model}/hf",
        template_dir=lambda wc: f"results/models/{wc.model}/with-template",
    log:
        "results/models/{model}/logs/model.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/model.py"
