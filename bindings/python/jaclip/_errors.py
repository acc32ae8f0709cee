"""jaclip.Error and one subclass per jaclip_status value."""


class Error(Exception):
    """A failed libjaclip call: .status is the jaclip_status value, .message jaclip_last_error()."""

    status = None

    def __init__(self, message, status=None):
        if status is not None:
            self.status = status
        self.message = message
        super().__init__(message)


class InvalidArgumentError(Error, ValueError):
    status = 1


class OutOfMemoryError(Error, MemoryError):
    status = 2


class InputOutputError(Error):
    """JACLIP_ERROR_IO: a file could not be opened, read or written."""

    status = 3


class ModelFormatError(Error):
    status = 4


class DeviceUnavailableError(Error):
    status = 5


class ShapeError(Error, ValueError):
    status = 6


class ImageDecodeError(Error):
    status = 7


class ImageTooLargeError(Error):
    status = 8


class InvalidUTF8Error(Error, ValueError):
    status = 9


class TokenizerError(Error):
    status = 10


class BackendError(Error):
    status = 11


class IndexFormatError(Error):
    status = 12


class NotFoundError(Error):
    status = 13


class InternalError(Error):
    status = 14


class ModelMismatchError(Error):
    """Data made by another model, e.g. an index whose fingerprint is not the model's."""
    status = 15


class ClosedError(InvalidArgumentError):
    """A method was called on a closed Model, Tokenizer, Image or Index (the C call would be on a freed handle)."""


class VersionError(ImportError):
    """The loaded libjaclip is not a version this package was written for."""


BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, OutOfMemoryError, InputOutputError, ModelFormatError, DeviceUnavailableError, ShapeError,
    ImageDecodeError, ImageTooLargeError, InvalidUTF8Error, TokenizerError, BackendError, IndexFormatError,
    NotFoundError, InternalError, ModelMismatchError)}


def from_status(status, message):
    cls = BY_STATUS.get(status, Error)
    return cls(message, status)
