//! Turns the nginx version and features that `nginx-sys` saw into `cfg`s.
//!
//! `nginx-sys` is a direct dependency so that cargo hands us its `DEP_NGINX_*`
//! variables (cargo#3544). Without the `nginx` feature there is no nginx at all
//! and nothing is emitted: the pure logic builds and tests on its own.

use std::env;

/// nginx versions that changed structs or behaviour the module depends on.
const VERSION_CFGS: &[(&str, u64, &str)] = &[(
    "ngx_resolve_peers",
    1_027_003,
    "shared peers carry `refs`, `zombie` and a generation counter (`peers.config`)",
)];

fn main() {
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    println!("cargo::rustc-check-cfg=cfg(ngx_feature, values(any()))");
    for (name, _, _) in VERSION_CFGS {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }

    if let Ok(features) = env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }

    let Ok(version) = env::var("DEP_NGINX_VERSION_NUMBER") else {
        return;
    };
    let Ok(version) = version.parse::<u64>() else {
        println!("cargo::warning=unreadable DEP_NGINX_VERSION_NUMBER {version:?}");
        return;
    };
    for (name, since, _why) in VERSION_CFGS {
        if version >= *since {
            println!("cargo::rustc-cfg={name}");
        }
    }
}
