"""Resolve a configured model to a local safetensors folder and write its manifest (a hub model's commit included)."""

from safety_landscape.io import log_to_file, write_json
from safety_landscape.modeling import folder_digest, materialize_source, pin_revision, resolve_source, with_chat_template

log_to_file(snakemake.log[0])
spec = snakemake.params.spec
key = spec.get("key", "model.source")  # a judge model's is judges[<i>].model
source = pin_revision(resolve_source(spec["source"], spec.get("gguf_file"), key, spec.get("revision")), key)
folder = materialize_source(source, snakemake.params.convert_dir, spec.get("trust_remote_code", False))
if spec.get("chat_template"):
    folder = with_chat_template(
        folder, spec["chat_template"], snakemake.params.template_dir, spec.get("trust_remote_code", False)
    )
write_json(
    snakemake.output.manifest,
    {
        "source": spec["source"],
        "kind": source.kind,
        "revision": source.revision,
        "path": folder,
        "digest": folder_digest(folder),
    },
)
