//! Descriptor builders shared by every provider: arguments, probe and
//! action descriptions, and API permissions, as `const fn`s so each
//! provider's registry entries stay plain `const` data.

use squall_core::catalog::{ActivitySpec, ArgSpec, ArgType, Kind};

use crate::Permission;

/// An argument; `default` is JSON text, `None` makes it required.
pub const fn arg(
    name: &'static str,
    ty: ArgType,
    default: Option<&'static str>,
    doc: &'static str,
) -> ArgSpec {
    ArgSpec {
        name,
        ty,
        default,
        doc,
        range: None,
    }
}

/// A required argument.
pub const fn required(name: &'static str, ty: ArgType, doc: &'static str) -> ArgSpec {
    arg(name, ty, None, doc)
}

/// An optional argument with its default as JSON text (`"null"` for none).
pub const fn optional(
    name: &'static str,
    ty: ArgType,
    default: &'static str,
    doc: &'static str,
) -> ArgSpec {
    arg(name, ty, Some(default), doc)
}

/// A probe: reads, never changes anything.
pub const fn probe(
    module: &'static str,
    func: &'static str,
    doc: &'static str,
    args: &'static [ArgSpec],
    returns: &'static str,
) -> ActivitySpec {
    ActivitySpec {
        module,
        func,
        kind: Kind::Probe,
        doc,
        args,
        returns,
        mutating: false,
    }
}

/// An action; `mutating` ones record their undo before they act.
pub const fn action(
    module: &'static str,
    func: &'static str,
    doc: &'static str,
    args: &'static [ArgSpec],
    returns: &'static str,
    mutating: bool,
) -> ActivitySpec {
    ActivitySpec {
        module,
        func,
        kind: Kind::Action,
        doc,
        args,
        returns,
        mutating,
    }
}

/// A permission on a core-group resource.
pub const fn core(resource: &'static str, verbs: &'static [&'static str]) -> Permission {
    Permission {
        group: "",
        resource,
        verbs,
    }
}

/// A permission on a resource of a named API group.
pub const fn group(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
) -> Permission {
    Permission {
        group,
        resource,
        verbs,
    }
}

/// The verbs of a read: get, list (and watch, which kube-rs waits use).
pub const READ: &[&str] = &["get", "list", "watch"];
