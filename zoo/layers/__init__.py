"""Plain ``torch.nn`` building blocks from the papers. Nothing here imports Lightning."""

__all__: list[str] = []

from zoo.layers.convlstm import ConvLSTM, ConvLSTMCell, ConvLSTMEncoderForecaster  # noqa: E402  (Shi et al., 2015)

__all__ += ["ConvLSTMCell", "ConvLSTM", "ConvLSTMEncoderForecaster"]

from zoo.layers.pixelcnn import (  # noqa: E402  (PixelCNN++ / PixelSNAIL gated residual blocks)
    DownRightShiftedConv2d,
    DownShiftedConv2d,
    GatedResidualBlock,
    PixelCNNNetwork,
    concat_elu,
    down_shift,
    right_shift,
    weight_norm_conv2d,
)

__all__ += ["concat_elu", "down_shift", "right_shift", "weight_norm_conv2d", "DownShiftedConv2d",
            "DownRightShiftedConv2d", "GatedResidualBlock", "PixelCNNNetwork"]

from zoo.layers.sparse import (  # noqa: E402  ("How Can We Be So Dense?": k-winners and sparse weights)
    KWinners,
    KWinners2d,
    SparseWeights,
    SparseWeights2d,
    decay_boost_strength,
    k_winners,
    k_winners2d,
    rezero_weights,
)

__all__ += ["KWinners", "KWinners2d", "SparseWeights", "SparseWeights2d", "k_winners", "k_winners2d",
            "rezero_weights", "decay_boost_strength"]

from zoo.layers.complex import (  # noqa: E402  (Deep Complex Networks: complex64 layers)
    ComplexBatchNorm1d,
    ComplexBatchNorm2d,
    ComplexConv2d,
    ComplexDropout,
    ComplexLinear,
    ComplexMagnitude,
    CReLU,
    LearnedImaginaryInput,
    ModReLU,
    ZReLU,
    complex_glorot_init_,
    complex_he_init_,
    complex_product,
    complex_rayleigh_,
)

__all__ += ["ComplexConv2d", "ComplexLinear", "ComplexBatchNorm1d", "ComplexBatchNorm2d", "CReLU", "ModReLU",
            "ZReLU", "ComplexDropout", "ComplexMagnitude", "LearnedImaginaryInput", "complex_product",
            "complex_rayleigh_", "complex_he_init_", "complex_glorot_init_"]

from zoo.layers.sequence_tagging import CharLSTMWordFeatures, LSTMTaggerNet  # noqa: E402  (textbook ch. 5 tagger)

__all__ += ["CharLSTMWordFeatures", "LSTMTaggerNet"]

from zoo.layers.classic import InceptionBlock  # noqa: E402  (GoogLeNet, textbook chapter 4.5)

__all__ += ["InceptionBlock"]
