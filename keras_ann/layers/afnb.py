"""AFNB: the asymmetric fusion non-local block."""

import keras

from keras_ann.layers.context_fusion import ContextFusion


@keras.saving.register_keras_serializable(package="keras_ann")
class AFNB(ContextFusion):
    """Asymmetric Fusion Non-local Block (Zhu et al., ICCV 2019).

    Fuses two backbone stages: the high-level features (stage 4) are the
    queries, the low-level features (stage 3) give the pyramid-sampled keys
    and values. The contexts of all query scales are summed, concatenated
    with the high-level features and projected by a 1x1 convolution and batch
    normalisation, without activation:

    ```
    context = sum(attention_s([high, low]) for s in query_scales)
    output  = BN(conv1x1(concat([context, high])))
    ```

    Args:
        key_channels: int, channels of the attention's queries, keys and
            values (the reference's `project_channels`, 256).
        out_channels: int, output channels (the reference uses the
            high-level input's channels, 2048 for ResNet-50/101).
        query_scales: tuple of ints, one attention block per scale.
            Defaults to `(1,)`.
        key_pool_scales: tuple of ints, the key pyramid. Defaults to
            `(1, 3, 6, 8)`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: list `[low_feats, high_feats]` (stage 3, stage 4).
        training: bool.

    Example:

    >>> import numpy as np
    >>> afnb = AFNB(key_channels=8, out_channels=32)
    >>> low = np.random.rand(1, 10, 10, 16).astype("float32")
    >>> high = np.random.rand(1, 10, 10, 32).astype("float32")
    >>> tuple(afnb([low, high]).shape)
    (1, 10, 10, 32)
    """

    share_key_query = False
    activation = None

    def _split_inputs(self, inputs):
        low_feats, high_feats = inputs
        return high_feats, low_feats
