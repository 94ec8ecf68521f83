//! The kernel sources compiled into this crate by `build.rs`: the text of every family
//! (`kernels/<family>.hip`) and of every header (`kernels/include/*`), for the runtime compile
//! ([`super::runtime`]). Empty when the crate was built without a `kernels/` folder.

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));

/// The source text of family `family`.
pub fn source(family: &str) -> Option<&'static str> {
    SOURCES
        .iter()
        .find(|(name, _)| *name == family)
        .map(|(_, text)| *text)
}

/// Every header as `(include name, text)`, e.g. `("rf_platform.h", "...")`.
pub fn headers() -> &'static [(&'static str, &'static str)] {
    HEADERS
}

/// The families whose sources are embedded, sorted.
pub fn families() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_includes_only_embedded_headers() {
        // Built from the repository, which has kernels/ (a build without it embeds nothing).
        assert!(families().count() > 0 && !headers().is_empty());
        for family in families() {
            let text = source(family).unwrap_or_default();
            for line in text.lines() {
                let Some(rest) = line.trim().strip_prefix("#include \"") else {
                    continue;
                };
                let name = rest.split('"').next().unwrap_or_default();
                assert!(
                    headers().iter().any(|(h, _)| *h == name),
                    "{family} includes {name}, which is not embedded"
                );
            }
        }
    }
}
