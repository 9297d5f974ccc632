//! A container's environment, command line and the program that runs, as
//! the kubelet composes them from the spec and the image.

use super::error::{KubeletError, Result};
use super::expand::expand;
use super::fields::PodFacts;
use super::images::Image;
use super::objects::{self, Kind};
use gatehouse_kube_emulator::{KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_PORT};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use std::path::PathBuf;

/// Environment variables in the order they were defined (later wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: Vec<(String, String)>,
}

impl Environment {
    fn set(&mut self, name: String, value: String) {
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }
}

/// The `default/kubernetes` Service's variables, as a kubelet gives every
/// container (whatever `enableServiceLinks` says).
fn api_service_env() -> Vec<(String, String)> {
    let (ip, port) = (KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_PORT);
    let url = format!("tcp://{ip}:{port}");
    let prefix = format!("KUBERNETES_PORT_{port}_TCP");
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), ip.to_owned()),
        ("KUBERNETES_SERVICE_PORT".into(), port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.to_string()),
        ("KUBERNETES_PORT".into(), url.clone()),
        (prefix.clone(), url),
        (format!("{prefix}_PROTO"), "tcp".into()),
        (format!("{prefix}_PORT"), port.to_string()),
        (format!("{prefix}_ADDR"), ip.to_owned()),
    ]
}

/// The hostname and API variables, then `envFrom`, then `env` in order,
/// each value expanded with the variables defined before it.
pub async fn environment(
    client: &kube::Client,
    facts: &PodFacts,
    container: &Container,
) -> Result<Environment> {
    let namespace = facts.pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Environment::default();
    // Defined before the spec's own variables (which may override them), as
    // a kubelet and container runtime do: the hostname, and the API's
    // in-cluster address that in-cluster clients (kube-rs, client-go) read.
    if let Some(name) = &facts.pod.metadata.name {
        env.set("HOSTNAME".into(), name.clone());
    }
    for (name, value) in api_service_env() {
        env.set(name, value);
    }
    for source in container.env_from.iter().flatten() {
        let (kind, name, optional) = if let Some(s) = &source.secret_ref {
            (Kind::Secret, s.name.clone(), s.optional)
        } else if let Some(c) = &source.config_map_ref {
            (Kind::ConfigMap, c.name.clone(), c.optional)
        } else {
            continue;
        };
        let Some(data) = objects::read(client, &namespace, kind, &name).await? else {
            if optional == Some(true) {
                continue;
            }
            return Err(KubeletError::Pod(format!("{kind} \"{name}\" not found")));
        };
        let prefix = source.prefix.clone().unwrap_or_default();
        for (key, value) in data {
            env.set(
                format!("{prefix}{key}"),
                String::from_utf8_lossy(&value).into_owned(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = value_of(client, &namespace, facts, var, &env).await? {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env)
}

/// The value `var` gets; `None` for an optional key that is absent.
async fn value_of(
    client: &kube::Client,
    namespace: &str,
    facts: &PodFacts,
    var: &EnvVar,
    env: &Environment,
) -> Result<Option<String>> {
    let Some(source) = &var.value_from else {
        let text = var.value.clone().unwrap_or_default();
        return Ok(Some(expand(&text, |name| env.get(name))));
    };
    if let Some(field) = &source.field_ref {
        return facts.field(&field.field_path).map(Some).ok_or_else(|| {
            KubeletError::Pod(format!("unsupported fieldPath {}", field.field_path))
        });
    }
    let (kind, name, key, optional) = if let Some(r) = &source.secret_key_ref {
        (Kind::Secret, &r.name, &r.key, r.optional)
    } else if let Some(r) = &source.config_map_key_ref {
        (Kind::ConfigMap, &r.name, &r.key, r.optional)
    } else {
        return Err(KubeletError::Pod(format!(
            "env {}: resourceFieldRef is not supported",
            var.name
        )));
    };
    let data = objects::read(client, namespace, kind, name).await?;
    match data.and_then(|d| d.get(key).cloned()) {
        Some(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
        None if optional == Some(true) => Ok(None),
        None => Err(KubeletError::Pod(format!(
            "couldn't find key {key} in {kind} {namespace}/{name}"
        ))),
    }
}

/// The command line: `command` replaces the image's entrypoint and `args`
/// its cmd (a `command` alone drops the cmd), both expanded with `env`.
pub fn argv(container: &Container, image: &Image, env: &Environment) -> Vec<String> {
    let (entrypoint, cmd) = match (&container.command, &container.args) {
        (Some(command), Some(args)) => (command.clone(), args.clone()),
        (Some(command), None) => (command.clone(), vec![]),
        (None, Some(args)) => (image.entrypoint.clone(), args.clone()),
        (None, None) => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let lookup = |name: &str| env.get(name);
    entrypoint
        .iter()
        .chain(&cmd)
        .map(|part| expand(part, lookup))
        .collect()
}

/// The host file `argv[0]` names in `image`.
pub fn program(image: &Image, argv: &[String]) -> Result<PathBuf> {
    let first = argv
        .first()
        .ok_or_else(|| KubeletError::Pod("no command specified".into()))?;
    image.resolve(first).ok_or_else(|| {
        KubeletError::Pod(format!(
            "exec: \"{first}\": executable file not found in the image"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Container {
            command: command.map(own),
            args: args.map(own),
            ..Container::default()
        }
    }

    #[test]
    fn command_and_args_override_entrypoint_and_cmd_as_kubernetes_does() {
        let image = Image {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--default".into()],
            ..Image::default()
        };
        let mut env = Environment::default();
        env.set("IP".into(), "10.0.0.1".into());
        assert_eq!(
            argv(&container(None, None), &image, &env),
            ["/entry", "--default"]
        );
        assert_eq!(argv(&container(Some(&["/x"]), None), &image, &env), ["/x"]);
        assert_eq!(
            argv(&container(None, Some(&["--at=$(IP)"])), &image, &env),
            ["/entry", "--at=10.0.0.1"]
        );
        assert_eq!(
            argv(&container(Some(&["/x"]), Some(&["$$(IP)"])), &image, &env),
            ["/x", "$(IP)"]
        );
    }
}
