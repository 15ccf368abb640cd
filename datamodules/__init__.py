"""LightningDataModules of the zoo, one per dataset. This package imports no zoo model or layer."""

from datamodules._paths import (DATA_DIR_ENV, CorruptDatasetError, DamagedImageError, DatasetNotFoundError, data_dir,
                                resolve_root)
from datamodules.airline import AirlinePassengersDataModule
from datamodules.binarized_mnist import BinarizedFashionMNISTDataModule, BinarizedMNISTDataModule
from datamodules.cifar10 import CIFAR10DataModule
from datamodules.dogs_vs_cats import DogsVsCatsDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.mnist import EmbeddedMNISTDataModule, FashionMNISTDataModule, MNISTDataModule, add_pixel_noise
from datamodules.moving_mnist import MovingMNISTDataModule
from datamodules.shakespeare import ShakespeareTrigramDataModule
from datamodules.toy_regression import BookPointsDataModule, PolynomialDataModule, TwoBlobsDataModule
from datamodules.ud_pos import UDPosDataModule

__all__ = [
    "DATA_DIR_ENV", "AirlinePassengersDataModule", "BinarizedFashionMNISTDataModule", "BinarizedMNISTDataModule",
    "BookPointsDataModule", "CIFAR10DataModule", "CorruptDatasetError", "DamagedImageError", "DatasetNotFoundError",
    "DogsVsCatsDataModule", "EmbeddedMNISTDataModule", "FashionMNISTDataModule", "ImageFolderDataModule",
    "MNISTDataModule", "MovingMNISTDataModule", "PolynomialDataModule", "ShakespeareTrigramDataModule",
    "TwoBlobsDataModule", "UDPosDataModule", "add_pixel_noise", "data_dir", "resolve_root",
]
