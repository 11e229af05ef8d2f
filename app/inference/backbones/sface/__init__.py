"""SFace (OpenCV Zoo, 2021dec): weights.py reads the ONNX file, net.py is the Keras port,
embedder.py runs it (kind `sface-keras`)."""
