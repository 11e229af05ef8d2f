"""One folder per embedder backbone: its weights reader, its net and its embedder with the
`build` that app/inference/registry.py maps its artefact kind to."""
