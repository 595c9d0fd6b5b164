//! Which host program stands in for which container image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A host file shown inside the sandboxes of an image's containers, read-only, at the path the
/// image would have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    /// Where the container sees it (absolute).
    pub path: String,
    /// The host file.
    pub host: PathBuf,
}

/// The host command behind one image: what its `ENTRYPOINT` and `CMD` would be, and the host
/// files that stand in for the image's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageCommand {
    /// The image's entrypoint argv as the container sees it (replaced by a container's
    /// `command`).
    pub entrypoint: Vec<String>,
    /// The image's default arguments (replaced by a container's `args`).
    pub cmd: Vec<String>,
    /// Host files bound into the image's sandboxes.
    pub files: Vec<ImageFile>,
}

impl ImageCommand {
    /// The host file behind container path `path`, if the image maps one there.
    pub fn host_file(&self, path: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.host.as_path())
    }
}

/// Image references mapped to host commands.
///
/// ```
/// use harness::runtime::local::ImageMap;
///
/// let images = ImageMap::default()
///     .with_program("phasecheck/phasepod:dev", "/usr/local/bin/phasepod", "/phasepod", Vec::<String>::new())
///     .with_image("test/sh:1", ["/bin/sh", "-c"], ["echo hello"]);
/// assert_eq!(images.get("phasecheck/phasepod:dev").unwrap().entrypoint, ["/phasepod"]);
/// assert!(images.get("busybox").is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageMap {
    images: BTreeMap<String, ImageCommand>,
}

/// Where sandboxes show the host's own files: a program there needs no binding.
const SYSTEM_PREFIXES: &[&str] = &["/usr/", "/etc/", "/bin/", "/sbin/", "/lib/", "/lib64/"];

impl ImageMap {
    /// Maps `image` to the host command `entrypoint` with default arguments `cmd`. An image
    /// without a tag is the same as `:latest`. A program named by an absolute path outside the
    /// host directories sandboxes show (`/usr`, `/etc`, `/bin`, …) is bound into them at its
    /// own path.
    pub fn with_image<S, E, C>(mut self, image: impl Into<String>, entrypoint: E, cmd: C) -> Self
    where
        S: Into<String>,
        E: IntoIterator<Item = S>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        let entrypoint: Vec<String> = entrypoint.into_iter().map(Into::into).collect();
        let files = entrypoint
            .first()
            .filter(|p| p.starts_with('/') && !SYSTEM_PREFIXES.iter().any(|s| p.starts_with(s)))
            .map(|p| ImageFile {
                path: p.clone(),
                host: PathBuf::from(p),
            })
            .into_iter()
            .collect();
        self.images.insert(
            normalise(&image.into()),
            ImageCommand {
                entrypoint,
                cmd: cmd.into_iter().map(Into::into).collect(),
                files,
            },
        );
        self
    }

    /// Maps `image` to host program `host`, which sandboxes show at `path` (where the image
    /// has its entrypoint) and which is called by that name, with `args` after it. Without
    /// sandboxes it runs from `host` with `path` as its `argv[0]`.
    pub fn with_program<A>(
        mut self,
        image: impl Into<String>,
        host: impl Into<PathBuf>,
        path: impl Into<String>,
        args: A,
    ) -> Self
    where
        A: IntoIterator,
        A::Item: Into<String>,
    {
        let path = path.into();
        let mut entrypoint = vec![path.clone()];
        entrypoint.extend(args.into_iter().map(Into::into));
        self.images.insert(
            normalise(&image.into()),
            ImageCommand {
                entrypoint,
                cmd: Vec::new(),
                files: vec![ImageFile {
                    path,
                    host: host.into(),
                }],
            },
        );
        self
    }

    /// The command behind `image`.
    pub fn get(&self, image: &str) -> Option<&ImageCommand> {
        self.images.get(&normalise(image))
    }

    /// Every mapped image reference.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.images.keys().map(String::as_str)
    }
}

/// `name` → `name:latest`; references with a tag or digest stay as they are.
fn normalise(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untagged_image_is_latest_and_a_registry_port_is_not_a_tag() {
        let images = ImageMap::default()
            .with_image("busybox", ["/bin/sh"], Vec::<String>::new())
            .with_image("localhost:5000/app", ["/bin/true"], Vec::<String>::new());
        assert!(images.get("busybox:latest").is_some());
        assert!(images.get("localhost:5000/app:latest").is_some());
        assert!(images.get("busybox:1").is_none());
    }

    #[test]
    fn programs_outside_the_system_directories_are_bound_in() {
        let images = ImageMap::default()
            .with_image("a", ["/bin/sh", "-c"], Vec::<String>::new())
            .with_image("b", ["/opt/tool/run"], Vec::<String>::new())
            .with_image("c", ["python3"], Vec::<String>::new())
            .with_program("d", "/build/phasecheck", "/phasepod", ["serve"]);
        assert!(images.get("a").unwrap().files.is_empty());
        assert_eq!(
            images.get("b").unwrap().host_file("/opt/tool/run"),
            Some(Path::new("/opt/tool/run"))
        );
        assert!(images.get("c").unwrap().files.is_empty());
        let d = images.get("d").unwrap();
        assert_eq!(d.entrypoint, ["/phasepod", "serve"]);
        assert_eq!(
            d.host_file("/phasepod"),
            Some(Path::new("/build/phasecheck"))
        );
    }
}
