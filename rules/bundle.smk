# The publishable results bundle: every artifact of the run except model weights (JSONL gzip-compressed),
# with a manifest of sha256 checksums; `safety-landscape-verify results/<run>/bundle` checks it.
rule bundle:
    input:
        # a direction's metadata comes with its folder, the output of the directions rule
        lambda wc: [os.path.dirname(path) if path.endswith("direction.json") else path for path in bundle_files().values()],
    output:
        f"{RUN}/bundle/MANIFEST.json",  # written last; the folder around it is replaced as a whole
    params:
        code=code("bundle.py"),
        files=lambda wc: bundle_files(),
        config=config,
        run=config["run"],
        workflow_dir=workflow.basedir,
    log:
        f"{RUN}/logs/bundle.log",
    conda:
        "../envs/safety-landscape.yaml"
    script:
        "../scripts/bundle.py"
