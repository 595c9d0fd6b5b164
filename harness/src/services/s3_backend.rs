//! The embedded object store's S3 backend: s3s-fs, with its listing fixed for real clients.
//!
//! s3s-fs 0.14.1 (pinned: later versions need a newer Rust) gets two things about
//! `ListObjects`/`ListObjectsV2` wrong that real clients depend on:
//!
//! - **An empty `delimiter=` parameter** is taken as a delimiter of `""`, which every key
//!   "contains" at position 0: a recursive listing comes back as one common prefix per first
//!   character after the prefix and no objects at all. minio-go (restic) and rclone send
//!   `delimiter=` (empty) for every recursive listing, so `restic list packs` printed nothing,
//!   `restic check` reported every pack "does not exist", and `rclone lsf -R` listed nothing. S3
//!   treats an empty delimiter as no delimiter; so does this backend.
//! - **`encoding-type=url`** is echoed in the response, but the keys are not encoded. Clients
//!   that asked for it (minio-go always does) URL-decode what they get back, so a key with `%` or
//!   `+` came back as a different key. This backend encodes `Key`, `Prefix`, `Delimiter`,
//!   `StartAfter`/`Marker`/`NextMarker` and the common prefixes as S3 does: every byte outside
//!   `A-Z a-z 0-9 - _ . ~ /` as `%XX` of its UTF-8 encoding.
//!
//! - **`HEAD`/`GET` of a key that is a "directory"** (a prefix of other keys: objects are files
//!   here) is answered `500 InternalError`, which rclone retries for a minute and more before it
//!   lists anything (it asks `HEAD` of the path it is given). S3 says `404 NoSuchKey`; so does this
//!   backend.
//!
//! Every other operation is s3s-fs's own, delegated unchanged.

use std::path::{Path, PathBuf};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

/// s3s-fs with the listing fixes described in the [module docs](self).
#[derive(Debug)]
pub(crate) struct HarnessFs {
    inner: s3s_fs::FileSystem,
    /// The directory s3s-fs serves (buckets are its subdirectories).
    root: PathBuf,
}

impl HarnessFs {
    /// Serves the buckets under `root` (which must exist).
    pub(crate) fn new(root: &Path) -> Result<Self, s3s_fs::Error> {
        Ok(HarnessFs {
            inner: s3s_fs::FileSystem::new(root)?,
            root: root.to_owned(),
        })
    }

    /// `NoSuchKey` for a key that names a directory of other keys' files: s3s-fs answers
    /// `500 InternalError` there, which clients retry for a minute (rclone asks `HEAD` of the
    /// prefix it is given, to tell a file from a directory).
    fn refuse_directory(&self, bucket: &str, key: &str) -> S3Result<()> {
        let plain = |p: &str| {
            Path::new(p)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        if plain(bucket) && plain(key) && self.root.join(bucket).join(key).is_dir() {
            return Err(s3s::s3_error!(NoSuchKey));
        }
        Ok(())
    }

    /// The V2 listing as S3 defines it, without encoding.
    async fn list_v2_plain(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        if req.input.delimiter.as_deref() == Some("") {
            req.input.delimiter = None;
        }
        req.input.encoding_type = None;
        self.inner.list_objects_v2(req).await
    }
}

/// Whether the request asked for URL-encoded names in the response.
fn wants_url_encoding(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// `name` URL-encoded as S3 does for `encoding-type=url`: unreserved characters and `/` kept,
/// every other byte of the UTF-8 encoding as `%XX`.
pub(crate) fn url_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn encode_in_place(value: &mut Option<String>) {
    if let Some(v) = value {
        *v = url_encode(v);
    }
}

fn encode_entries(contents: &mut Option<ObjectList>, prefixes: &mut Option<CommonPrefixList>) {
    for object in contents.iter_mut().flatten() {
        encode_in_place(&mut object.key);
    }
    for prefix in prefixes.iter_mut().flatten() {
        encode_in_place(&mut prefix.prefix);
    }
}

/// The S3 implementation: the operations s3s-fs implements, delegated unchanged, and the
/// fixed listings.
macro_rules! s3_impl {
    ($($op:ident: $input:ty => $output:ty;)*) => {
        #[async_trait::async_trait]
        impl S3 for HarnessFs {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$op(req).await
                }
            )*

            async fn get_object(
                &self,
                req: S3Request<GetObjectInput>,
            ) -> S3Result<S3Response<GetObjectOutput>> {
                self.refuse_directory(&req.input.bucket, &req.input.key)?;
                self.inner.get_object(req).await
            }

            async fn head_object(
                &self,
                req: S3Request<HeadObjectInput>,
            ) -> S3Result<S3Response<HeadObjectOutput>> {
                self.refuse_directory(&req.input.bucket, &req.input.key)?;
                self.inner.head_object(req).await
            }

            async fn list_objects_v2(
                &self,
                req: S3Request<ListObjectsV2Input>,
            ) -> S3Result<S3Response<ListObjectsV2Output>> {
                self.list_v2(req).await
            }

            async fn list_objects(
                &self,
                req: S3Request<ListObjectsInput>,
            ) -> S3Result<S3Response<ListObjectsOutput>> {
                self.list_v1(req).await
            }
        }
    };
}

s3_impl! {
    create_bucket: CreateBucketInput => CreateBucketOutput;
    copy_object: CopyObjectInput => CopyObjectOutput;
    delete_bucket: DeleteBucketInput => DeleteBucketOutput;
    delete_object: DeleteObjectInput => DeleteObjectOutput;
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput;
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
    head_bucket: HeadBucketInput => HeadBucketOutput;
    list_buckets: ListBucketsInput => ListBucketsOutput;
    put_object: PutObjectInput => PutObjectOutput;
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
    upload_part: UploadPartInput => UploadPartOutput;
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
    list_parts: ListPartsInput => ListPartsOutput;
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
}

impl HarnessFs {
    /// `ListObjectsV2`, fixed.
    async fn list_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let encode = wants_url_encoding(req.input.encoding_type.as_ref());
        let encoding = req.input.encoding_type.clone();
        let delimiter = req.input.delimiter.clone();
        let response = self.list_v2_plain(req).await?;
        Ok(response.map_output(|mut out| {
            // NB: echo the request's own delimiter (even an empty one) and encoding.
            out.delimiter = delimiter;
            out.encoding_type = encoding;
            if encode {
                encode_entries(&mut out.contents, &mut out.common_prefixes);
                encode_in_place(&mut out.prefix);
                encode_in_place(&mut out.delimiter);
                encode_in_place(&mut out.start_after);
            }
            out
        }))
    }

    /// `ListObjects` (V1), fixed: answered from the fixed V2 listing.
    async fn list_v1(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let encode = wants_url_encoding(req.input.encoding_type.as_ref());
        let encoding = req.input.encoding_type.clone();
        let delimiter = req.input.delimiter.clone();
        let marker = req.input.marker.clone();
        let response = self.list_v2_plain(req.map_input(Into::into)).await?;
        Ok(response.map_output(|v2| {
            let mut out = ListObjectsOutput {
                contents: v2.contents,
                common_prefixes: v2.common_prefixes,
                delimiter,
                encoding_type: encoding,
                name: v2.name,
                prefix: v2.prefix,
                marker,
                max_keys: v2.max_keys,
                is_truncated: v2.is_truncated,
                // NB: s3s-fs's continuation token is the last key listed: V1's NextMarker.
                next_marker: v2.next_continuation_token,
                ..Default::default()
            };
            if encode {
                encode_entries(&mut out.contents, &mut out.common_prefixes);
                encode_in_place(&mut out.prefix);
                encode_in_place(&mut out.delimiter);
                encode_in_place(&mut out.marker);
                encode_in_place(&mut out.next_marker);
            }
            out
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_unreserved_characters_and_slashes() {
        assert_eq!(url_encode("data/ab/0f-x_y.z~"), "data/ab/0f-x_y.z~");
        assert_eq!(url_encode("a b+c%d"), "a%20b%2Bc%25d");
        assert_eq!(url_encode("grün"), "gr%C3%BCn");
    }
}
