"""The face embedder: Keras port of the base, heads, fine-tuning, threshold tuning, export."""
