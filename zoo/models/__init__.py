"""Zoo models: one module per paper or textbook chapter, each model a LightningModule."""

from zoo.models.base import Classifier, ImageClassifier, Regressor, ZooModule
from zoo.models.convlstm_forecaster import ConvLSTMForecaster, FrameStripCallback
from zoo.models.textbook_ch3 import MLP, LinearRegression, LogisticRegression, PolynomialRegression
from zoo.models.textbook_ch4 import BookCNN, LeNet
from zoo.models.pixelcnn import PixelCNN
from zoo.models.sparse_cnn import DenseCNN, SparseCNN

__all__ = ["ZooModule", "Classifier", "ImageClassifier", "Regressor", "MLP", "BookCNN", "LeNet", "PixelCNN"]
__all__ += ["DenseCNN", "SparseCNN"]
__all__ += ["ConvLSTMForecaster", "FrameStripCallback"]
from zoo.models.complex_net import ComplexNet, RealNet, TwoConvNet  # noqa: E402

__all__ += ["ComplexNet", "RealNet", "TwoConvNet"]
from zoo.models.textbook_ch5 import LSTMForecaster, LSTMTagger, NGramLanguageModel  # noqa: E402

__all__ += ["LSTMForecaster", "NGramLanguageModel", "LSTMTagger"]
from zoo.models.airbench import AirbenchNet  # noqa: E402

__all__ += ["AirbenchNet"]
from zoo.models.classic_cnns import VGG, AlexNet, GoogLeNet, ResNet  # noqa: E402

__all__ += ["AlexNet", "VGG", "GoogLeNet", "ResNet"]

__all__ += ["LinearRegression", "PolynomialRegression", "LogisticRegression"]
from zoo.models.textbook_ch7 import TransferClassifier  # noqa: E402

__all__ += ["TransferClassifier"]
from zoo.models.generative import GAN, Autoencoder, SampleGridCallback, VariationalAutoencoder  # noqa: E402
from zoo.models.textbook_ch6 import (  # noqa: E402
    DCGAN, LSGAN, VAE, WGANGP, ConditionalGAN, ConvAutoencoder, MLPAutoencoder, MLPGAN,
)

__all__ += ["GAN", "Autoencoder", "VariationalAutoencoder", "SampleGridCallback"]
__all__ += ["MLPAutoencoder", "ConvAutoencoder", "VAE", "MLPGAN", "LSGAN", "ConditionalGAN", "DCGAN", "WGANGP"]
