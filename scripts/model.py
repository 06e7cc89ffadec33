"""Resolve the configured model to a local safetensors folder and write its manifest."""

from safety_landscape.io import log_to_file, write_json
from safety_landscape.modeling import folder_digest, materialize_source, resolve_source

log_to_file(snakemake.log[0])
p = snakemake.params
source = resolve_source(p.source, p.gguf_file)
folder = materialize_source(source, p.convert_dir, p.trust_remote_code)
write_json(snakemake.output.manifest, {"source": p.source, "kind": source.kind, "path": folder, "digest": folder_digest(folder)})
