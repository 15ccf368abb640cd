"""LightningDataModules of the zoo, one per dataset. This package never imports ``zoo``."""

from datamodules._paths import (
    DATA_DIR_ENV,
    CorruptDatasetError,
    DamagedImageError,
    DatasetNotFoundError,
    data_dir,
    resolve_root,
)
from datamodules.binarized_mnist import BinarizedFashionMNISTDataModule, BinarizedMNISTDataModule
from datamodules.moving_mnist import MovingMNISTDataModule
from datamodules.mnist import (
    EmbeddedMNISTDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    add_pixel_noise,
)

__all__ = [
    "DATA_DIR_ENV",
    "DatasetNotFoundError",
    "CorruptDatasetError",
    "DamagedImageError",
    "data_dir",
    "resolve_root",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "EmbeddedMNISTDataModule",
    "add_pixel_noise",
    "BinarizedMNISTDataModule",
    "BinarizedFashionMNISTDataModule",
    "MovingMNISTDataModule",
]

from datamodules.airline import AirlinePassengersDataModule  # noqa: E402
from datamodules.shakespeare import ShakespeareTrigramDataModule  # noqa: E402
from datamodules.ud_pos import UDPosDataModule  # noqa: E402

__all__ += ["AirlinePassengersDataModule", "ShakespeareTrigramDataModule", "UDPosDataModule"]
from datamodules.cifar10 import CIFAR10DataModule  # noqa: E402

__all__ += ["CIFAR10DataModule"]
from datamodules.toy_regression import BookPointsDataModule, PolynomialDataModule, TwoBlobsDataModule  # noqa: E402

__all__ += ["BookPointsDataModule", "PolynomialDataModule", "TwoBlobsDataModule"]
from datamodules.dogs_vs_cats import DogsVsCatsDataModule  # noqa: E402

__all__ += ["DogsVsCatsDataModule"]
from datamodules.image_folder import ImageFolderDataModule  # noqa: E402

__all__ += ["ImageFolderDataModule"]
