"""APNB: the asymmetric pyramid non-local block."""

import keras

from keras_ann.layers.context_fusion import ContextFusion


@keras.saving.register_keras_serializable(package="keras_ann")
class APNB(ContextFusion):
    """Asymmetric Pyramid Non-local Block (Zhu et al., ICCV 2019).

    Self-attention over pyramid-sampled keys with one projection shared by
    keys and queries. The contexts of all query scales are summed,
    concatenated with the input and projected by a 1x1 convolution, batch
    normalisation and ReLU:

    ```
    context = sum(attention_s([x, x]) for s in query_scales)
    output  = ReLU(BN(conv1x1(concat([context, x]))))
    ```

    Args:
        key_channels: int, channels of the attention's queries, keys and
            values (the reference's `project_channels`, 256).
        out_channels: int, output channels (512 in the reference head); the
            attention's output has as many.
        query_scales: tuple of ints, one attention block per scale.
            Defaults to `(1,)`.
        key_pool_scales: tuple of ints, the key pyramid. Defaults to
            `(1, 3, 6, 8)`.
        **kwargs: base `Layer` arguments.

    Example:

    >>> import numpy as np
    >>> apnb = APNB(key_channels=8, out_channels=16)
    >>> tuple(apnb(np.random.rand(2, 13, 11, 16).astype("float32")).shape)
    (2, 13, 11, 16)
    """

    share_key_query = True
    activation = "relu"

    def _split_inputs(self, inputs):
        return inputs, inputs
