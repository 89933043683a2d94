"""Builds a small FVI-style TF Serving reader as a SavedModel (run with the TensorFlow venv).

NHWC grey line in, conv features, BiLSTM, softmax over the charset out: the shape of model a team
would bring over from TF Serving. Also writes one input and TensorFlow's output for it, so the test
can check the converted ONNX file from the serving environment.

    .venv-tf/bin/python tests/tf_savedmodel.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

CLASSES = 211  # blank + the Vietnamese charset, as fvi.charset


def build() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    x = inp = tf.keras.Input((32, 128, 1), name="line")
    for width in (16, 32):
        x = tf.keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.Reshape((32, 8 * 32))(tf.keras.layers.Permute((2, 1, 3))(x))  # width becomes time
    x = tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(32, return_sequences=True))(x)
    out = tf.keras.layers.Dense(CLASSES, activation="softmax", name="char_probs")(x)
    return tf.keras.Model(inp, out)


def main() -> None:
    out = Path(sys.argv[1])
    model = build()

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 128, 1], tf.float32, name="line")])
    def serve(line):
        return {"char_probs": model(line, training=False)}

    tf.saved_model.save(model, str(out / "saved_model"), signatures={"serving_default": serve})
    x = np.random.default_rng(1).random((3, 32, 128, 1), dtype=np.float32)
    np.savez(out / "expected.npz", line=x, char_probs=model(x, training=False).numpy())


if __name__ == "__main__":
    main()
