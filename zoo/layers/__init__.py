"""Plain ``torch.nn`` building blocks from the papers. Nothing here imports Lightning or the rest of the zoo."""

from zoo.layers.backbones import Backbone, build_backbone, torchvision_model
from zoo.layers.classic import InceptionBlock
from zoo.layers.complex import (ComplexBatchNorm1d, ComplexBatchNorm2d, ComplexConv2d, ComplexDropout, ComplexLinear,
                                ComplexMagnitude, CReLU, LearnedImaginaryInput, ModReLU, ZReLU, complex_glorot_init_,
                                complex_he_init_, complex_product, complex_rayleigh_)
from zoo.layers.convlstm import ConvLSTM, ConvLSTMCell, ConvLSTMEncoderForecaster, apply_separable_filters
from zoo.layers.generative_losses import (gaussian_kl, gradient_penalty, least_squares_d_loss, least_squares_g_loss,
                                          r1_penalty)
from zoo.layers.heads import mlp
from zoo.layers.pixelcnn import (DownRightShiftedConv2d, DownShiftedConv2d, GatedResidualBlock, PixelCNNNetwork,
                                 concat_elu, down_shift, right_shift, weight_norm_conv2d)
from zoo.layers.sequence_tagging import CharLSTMWordFeatures, LSTMTaggerNet
from zoo.layers.sparse import (KWinners, KWinners2d, SparseWeights, SparseWeights2d, decay_boost_strength, k_winners,
                               k_winners2d, rezero_weights)

__all__ = [
    "Backbone", "CReLU", "CharLSTMWordFeatures", "ComplexBatchNorm1d", "ComplexBatchNorm2d", "ComplexConv2d",
    "ComplexDropout", "ComplexLinear", "ComplexMagnitude", "ConvLSTM", "ConvLSTMCell", "ConvLSTMEncoderForecaster",
    "DownRightShiftedConv2d", "DownShiftedConv2d", "GatedResidualBlock", "InceptionBlock", "KWinners", "KWinners2d",
    "LSTMTaggerNet", "LearnedImaginaryInput", "ModReLU", "PixelCNNNetwork", "SparseWeights", "SparseWeights2d",
    "ZReLU", "apply_separable_filters", "build_backbone", "complex_glorot_init_", "complex_he_init_",
    "complex_product", "complex_rayleigh_", "concat_elu", "decay_boost_strength", "down_shift", "gaussian_kl",
    "gradient_penalty", "k_winners", "k_winners2d", "least_squares_d_loss", "least_squares_g_loss", "mlp",
    "r1_penalty", "rezero_weights", "right_shift", "torchvision_model", "weight_norm_conv2d",
]
