"""regnerf_tf.datasets: scene readers, canonical splits and TFDS builders."""
