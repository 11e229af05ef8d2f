"""dlib's face-recognition ResNet: weights.py reads the .dat file, net.py is the Keras port,
embedder.py runs it (kind `dlib-keras`)."""
