//! Start-up order: dependencies first, then priority, then id; refusals name what is wrong.

use std::collections::{BTreeMap, BTreeSet};

use crate::Extension;

/// Why a set of extensions cannot start. Every message names the extensions involved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("extension id {id:?} is not valid: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("two extensions have the id {id:?}: {first} and {second}; ids must be unique")]
    DuplicateId { id: String, first: String, second: String },
    #[error("extension {extension:?} depends on {missing:?}, which is not built into this binary")]
    MissingDependency { extension: String, missing: String },
    #[error("extensions depend on each other in a cycle: {}", cycle.join(" -> "))]
    DependencyCycle { cycle: Vec<String> },
}

/// Extensions in the order they start (and are mounted, migrated and scheduled).
pub struct Ordered {
    extensions: Vec<Box<dyn Extension>>,
}

impl Ordered {
    pub fn iter(&self) -> impl Iterator<Item = &dyn Extension> {
        self.extensions.iter().map(|extension| extension.as_ref())
    }

    /// The ids in start order.
    pub fn ids(&self) -> Vec<&'static str> {
        self.extensions.iter().map(|extension| extension.metadata().id).collect()
    }
}

/// The extensions registered in this binary, ordered and checked.
pub fn discover() -> Result<Ordered, RegistryError> {
    order(crate::registered())
}

/// Orders `extensions`: each after its dependencies; among those free to go, lower priority first,
/// then id. Refuses invalid or duplicate ids, missing dependencies and cycles.
pub fn order(extensions: Vec<Box<dyn Extension>>) -> Result<Ordered, RegistryError> {
    let mut by_id: BTreeMap<&'static str, Box<dyn Extension>> = BTreeMap::new();
    for extension in extensions {
        let metadata = extension.metadata();
        check_id(metadata.id)?;
        if let Some(existing) = by_id.get(metadata.id) {
            let mut names = [existing.metadata().name.to_string(), metadata.name.to_string()];
            names.sort();
            let [first, second] = names;
            return Err(RegistryError::DuplicateId { id: metadata.id.to_string(), first, second });
        }
        by_id.insert(metadata.id, extension);
    }
    for (id, extension) in &by_id {
        for dependency in extension.dependencies() {
            if !by_id.contains_key(dependency) {
                return Err(RegistryError::MissingDependency {
                    extension: (*id).to_string(),
                    missing: (*dependency).to_string(),
                });
            }
        }
    }
    let sequence = start_sequence(&by_id)?;
    let mut extensions = Vec::with_capacity(sequence.len());
    for id in sequence {
        if let Some(extension) = by_id.remove(id) {
            extensions.push(extension);
        }
    }
    Ok(Ordered { extensions })
}

/// Kahn's algorithm with a (priority, id) ordered set of the extensions whose dependencies started.
fn start_sequence(by_id: &BTreeMap<&'static str, Box<dyn Extension>>) -> Result<Vec<&'static str>, RegistryError> {
    let mut waiting_on: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for (id, extension) in by_id {
        let dependencies: BTreeSet<&'static str> = extension.dependencies().iter().copied().collect();
        waiting_on.insert(id, dependencies.len());
        for dependency in dependencies {
            dependents.entry(dependency).or_default().push(id);
        }
    }
    let priority = |id: &'static str| by_id.get(id).map_or(crate::DEFAULT_PRIORITY, |extension| extension.priority());
    let mut ready: BTreeSet<(i32, &'static str)> =
        waiting_on.iter().filter(|(_, count)| **count == 0).map(|(id, _)| (priority(id), *id)).collect();
    let mut sequence = Vec::with_capacity(by_id.len());
    while let Some(next) = ready.pop_first() {
        let (_, id) = next;
        sequence.push(id);
        for dependent in dependents.get(id).into_iter().flatten() {
            if let Some(count) = waiting_on.get_mut(dependent) {
                *count -= 1;
                if *count == 0 {
                    ready.insert((priority(dependent), dependent));
                }
            }
        }
    }
    if sequence.len() < by_id.len() {
        return Err(RegistryError::DependencyCycle { cycle: find_cycle(by_id, &sequence) });
    }
    Ok(sequence)
}

/// One cycle among the extensions that never became ready, as `a -> b -> ... -> a`.
fn find_cycle(by_id: &BTreeMap<&'static str, Box<dyn Extension>>, started: &[&'static str]) -> Vec<String> {
    let started: BTreeSet<&str> = started.iter().copied().collect();
    let Some(mut current) = by_id.keys().copied().find(|id| !started.contains(id)) else {
        return Vec::new();
    };
    // Every stuck extension has a stuck dependency, so walking dependencies must revisit one.
    let mut path: Vec<&'static str> = Vec::new();
    loop {
        if let Some(position) = path.iter().position(|id| *id == current) {
            let mut cycle: Vec<String> = path[position..].iter().map(|id| (*id).to_string()).collect();
            cycle.push(current.to_string());
            return cycle;
        }
        path.push(current);
        let next = by_id.get(current).and_then(|extension| {
            extension.dependencies().iter().copied().find(|dependency| !started.contains(dependency))
        });
        match next {
            Some(next) => current = next,
            None => return path.iter().map(|id| (*id).to_string()).collect(),
        }
    }
}

fn check_id(id: &str) -> Result<(), RegistryError> {
    let invalid = |reason| Err(RegistryError::InvalidId { id: id.to_string(), reason });
    if id.is_empty() || id.len() > 64 {
        return invalid("it must be 1 to 64 characters");
    }
    if !id.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') {
        return invalid("use lowercase letters, digits and '-' only");
    }
    if id.starts_with('-') || id.ends_with('-') {
        return invalid("it must not start or end with '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
