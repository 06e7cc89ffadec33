# On-demand exports of one grid point, e.g.
#   snakemake results/<run>/export/d1/a+0.1000/model            (full HF checkpoint folder)
#   snakemake results/<run>/export/d1/a+0.1000/delta.safetensors (dense delta sum_i c_i d_i)
rule export_checkpoint:
    input:
        model=subject_manifest(),
        points=lambda wc: f"{RUN}/points/{LANDSCAPES[wc.landscape].point_landscape}",
    output:
        directory(f"{RUN}/export/{{landscape}}/{{point}}/model"),
    params:
        code=code("export.py"),
        trust_remote_code=config["model"]["trust_remote_code"],
    log:
        f"{RUN}/logs/export/{{landscape}}/{{point}}/model.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/export.py"


rule export_delta:
    input:
        model=subject_manifest(),
        points=lambda wc: f"{RUN}/points/{LANDSCAPES[wc.landscape].point_landscape}",
    output:
        f"{RUN}/export/{{landscape}}/{{point}}/delta.safetensors",
    params:
        code=code("export.py"),
        trust_remote_code=config["model"]["trust_remote_code"],
    log:
        f"{RUN}/logs/export/{{landscape}}/{{point}}/delta.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/export.py"
