"""Zoo models: each a LightningModule, one module per paper or model family (the textbook's chapter is named in
each module's docstring)."""

from zoo.models.airbench import AirbenchNet
from zoo.models.autoencoders import VAE, ConvAutoencoder, MLPAutoencoder
from zoo.models.base import Classifier, ImageClassifier, Regressor, ZooModule
from zoo.models.classic_cnns import VGG, AlexNet, GoogLeNet, ResNet
from zoo.models.complex_net import ComplexNet, RealNet, TwoConvNet
from zoo.models.convlstm_forecaster import ConvLSTMForecaster
from zoo.models.gans import DCGAN, LSGAN, MLPGAN, WGANGP, ConditionalGAN
from zoo.models.generative import GAN, Autoencoder, GenerativeModel, VariationalAutoencoder
from zoo.models.pixelcnn import PixelCNN
from zoo.models.regressions import LinearRegression, LogisticRegression, PolynomialRegression
from zoo.models.sequence_models import LSTMForecaster, LSTMTagger, NGramLanguageModel
from zoo.models.small_classifiers import MLP, BookCNN, LeNet
from zoo.models.sparse_cnn import DenseCNN, SparseCNN
from zoo.models.transfer import TransferClassifier

__all__ = [
    "VGG", "AirbenchNet", "AlexNet", "Autoencoder", "BookCNN", "Classifier", "ComplexNet", "ConditionalGAN",
    "ConvAutoencoder", "ConvLSTMForecaster", "DCGAN", "DenseCNN", "GAN", "GenerativeModel", "GoogLeNet",
    "ImageClassifier", "LSGAN", "LSTMForecaster", "LSTMTagger", "LeNet", "LinearRegression", "LogisticRegression",
    "MLP", "MLPAutoencoder", "MLPGAN", "NGramLanguageModel", "PixelCNN", "PolynomialRegression", "RealNet",
    "Regressor", "ResNet", "SparseCNN", "TransferClassifier", "TwoConvNet", "VAE", "VariationalAutoencoder",
    "WGANGP", "ZooModule",
]
