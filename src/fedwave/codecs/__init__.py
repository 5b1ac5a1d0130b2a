"""Update codecs: tensors to bytes and back (quantization, sparsification, rotation, low rank).

``len(codec.encode(...))`` is the size a message really has: header and checksum included, never a
formula. Pick a codec by spec string with :func:`get_codec`; ``fedwave codecs`` prints
:func:`format_codec_list`. Malformed payloads raise :class:`~fedwave.errors.PayloadError`; a receiver
that knows the shapes it expects decodes with ``codec.decode(payload, expected=metas_of(tensors))``,
which refuses any other layout before allocating for it.
"""

from fedwave.codecs.base import Codec, CodecState
from fedwave.codecs.header import TensorMeta, metas_of
from fedwave.codecs.registry import CodecInfo, available_codecs, format_codec_list, get_codec
from fedwave.errors import PayloadError

__all__ = [
    "Codec",
    "CodecInfo",
    "CodecState",
    "PayloadError",
    "TensorMeta",
    "available_codecs",
    "format_codec_list",
    "get_codec",
    "metas_of",
]
