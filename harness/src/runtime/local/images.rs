//! Which host command stands in for which container image.

use std::collections::BTreeMap;

/// The host command behind one image: what its `ENTRYPOINT` and `CMD` would be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageCommand {
    /// The image's entrypoint argv (replaced by a container's `command`).
    pub entrypoint: Vec<String>,
    /// The image's default arguments (replaced by a container's `args`).
    pub cmd: Vec<String>,
}

/// Image references mapped to host commands.
///
/// ```
/// use harness::runtime::local::ImageMap;
///
/// let images = ImageMap::default()
///     .with_image("phasecheck/phasepod:dev", ["/usr/local/bin/phasepod"], Vec::<String>::new())
///     .with_image("test/sh:1", ["/bin/sh", "-c"], ["echo hello"]);
/// assert!(images.get("test/sh:1").is_some());
/// assert!(images.get("busybox").is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageMap {
    images: BTreeMap<String, ImageCommand>,
}

impl ImageMap {
    /// Maps `image` to a host `entrypoint` with default arguments `cmd`. An image without a
    /// tag is the same as `:latest`.
    pub fn with_image<S, E, C>(mut self, image: impl Into<String>, entrypoint: E, cmd: C) -> Self
    where
        S: Into<String>,
        E: IntoIterator<Item = S>,
        C: IntoIterator,
        C::Item: Into<String>,
    {
        self.images.insert(
            normalise(&image.into()),
            ImageCommand {
                entrypoint: entrypoint.into_iter().map(Into::into).collect(),
                cmd: cmd.into_iter().map(Into::into).collect(),
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
}
