"""The exports bucket: export files, uploaded whole or in parts, and presigned download URLs."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from tracker.adapters.clients import client_config, translated_errors
from tracker.profile_models import ExportPart
from tracker.settings import require_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NDJSON = "application/x-ndjson"


@cache
def s3_client() -> S3Client:
    # Signature V4: required to download an object encrypted with a KMS key.
    return boto3.client("s3", config=client_config().merge(Config(signature_version="s3v4")))


class S3ExportFiles:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put_file(self, key: str, body: bytes) -> None:
        with translated_errors("The export bucket"):
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=NDJSON)

    def start_upload(self, key: str) -> str:
        with translated_errors("The export bucket"):
            return self._client.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=NDJSON)["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        with translated_errors("The export bucket"):
            answer = self._client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return answer["ETag"]

    def complete_upload(self, key: str, upload_id: str, parts: list[ExportPart]) -> None:
        with translated_errors("The export bucket"):
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": part.number, "ETag": part.etag} for part in parts]},
            )

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            with translated_errors("The export bucket"):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except self._client.exceptions.NoSuchUpload:
            return  # completed or aborted already

    def delete_file(self, key: str) -> None:
        with translated_errors("The export bucket"):
            self._client.delete_object(Bucket=self._bucket, Key=key)

    def download_url(self, key: str, seconds: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=seconds
        )


def export_files() -> S3ExportFiles:
    return S3ExportFiles(s3_client(), require_settings("exports_bucket").exports_bucket)
