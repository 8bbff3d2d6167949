"""regnerf_tf.flows: the RealNVP patch prior (see the flow-prior issue)."""
