//! What an environment may use: CPU, memory and processes for its cgroup, and
//! the disk its volume is capped at, from the configuration's `size` and `disk`
//! and the environment's type.
//!
//! Sizes follow Platform.sh's application sizes (Fixed, `HIGH_CPU` profile:
//! S = 0.4 CPU / 128 MB up to 4XL = 10 CPU / 5504 MB) with floors that the
//! servers Grove runs need. `AUTO` is `M` on production and staging and `S` on
//! development environments, and development services are always `S`, as on
//! Platform.sh (preview environments are smaller).

use std::fmt;

use grove_config::{MountSource, Project, Size};

/// CPU (thousandths of a core) and memory (MB) of each size.
const SIZES: [(Size, u64, u64); 6] = [
    (Size::S, 400, 128),
    (Size::M, 400, 288),
    (Size::L, 1200, 704),
    (Size::XL, 2500, 1280),
    (Size::XXL, 5000, 2752),
    (Size::XXXXL, 10000, 5504),
];
/// The least CPU an app or a service gets: a build-free start of a Python or PHP
/// app is throttled to a crawl below.
pub const CPU_FLOOR_MILLIS: u64 = 500;
/// The least memory an app or a development service gets.
pub const MEMORY_FLOOR_MB: u64 = 256;
/// Production servers are tuned for more (MariaDB's 128 MB buffer pool and
/// performance schema): their floor.
pub const PRODUCTION_SERVICE_FLOOR_MB: u64 = 512;
/// Shared by the hooks, crons and helpers (nginx) of the environment.
pub const OVERHEAD_MB: u64 = 128;
/// Processes (and threads) per app or service; PHP-FPM pools, MariaDB's and
/// RabbitMQ's threads fit.
pub const PIDS_PER_CONTAINER: u64 = 512;
/// Processes for the environment's hooks and crons.
pub const PIDS_OVERHEAD: u64 = 256;
/// What a service without `disk` (Redis, Memcached) may still write.
pub const SERVICE_DISK_WITHOUT_DISK_MB: u64 = 128;

/// An app or a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    App,
    Service,
}

/// One app or service and what it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub kind: ContainerKind,
    pub name: String,
    /// The size used (never `AUTO`).
    pub size: Size,
    pub cpu_millis: u64,
    pub memory_mb: u64,
}

/// An environment's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub containers: Vec<Container>,
    /// The sum of the containers' CPU.
    pub cpu_millis: u64,
    /// The sum of the containers' memory plus [`OVERHEAD_MB`].
    pub memory_mb: u64,
    pub pids: u64,
    /// The volume's cap: the sum of the apps' and services' `disk`; `None` when
    /// an app keeps mounts on the volume without a `disk` (nothing to cap at).
    pub disk_mb: Option<u64>,
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .containers
            .iter()
            .map(|c| format!("`{}` {} ({} MB)", c.name, c.size, c.memory_mb))
            .collect();
        write!(
            f,
            "{}: memory {} MB, CPU {}.{:02}, {} processes",
            parts.join(", "),
            self.memory_mb,
            self.cpu_millis / 1000,
            (self.cpu_millis % 1000) / 10,
            self.pids
        )?;
        if let Some(disk) = self.disk_mb {
            write!(f, ", disk {disk} MB")?;
        }
        Ok(())
    }
}

impl Container {
    /// The name of its cgroup inside its environment's (`app-web`, `service-db`):
    /// apps and services may share a name.
    pub fn group(&self) -> String {
        container_group(self.kind, &self.name)
    }
}

/// See [`Container::group`].
pub fn container_group(kind: ContainerKind, name: &str) -> String {
    match kind {
        ContainerKind::App => format!("app-{name}"),
        ContainerKind::Service => format!("service-{name}"),
    }
}

fn size_of(size: Size) -> (u64, u64) {
    SIZES
        .iter()
        .find(|(s, ..)| *s == size)
        .map_or((CPU_FLOOR_MILLIS, MEMORY_FLOOR_MB), |(_, cpu, mem)| {
            (*cpu, *mem)
        })
}

/// The resources of an environment running `config`; `development` for
/// development environments (`production` and `staging` are not).
pub fn resources(config: &Project, development: bool) -> Resources {
    let auto = if development { Size::S } else { Size::M };
    let mut containers = Vec::new();
    let mut container = |kind: ContainerKind, name: &str, size: Size, floor_mb: u64| {
        let size = if size == Size::Auto { auto } else { size };
        let (cpu, memory) = size_of(size);
        containers.push(Container {
            kind,
            name: name.to_owned(),
            size,
            cpu_millis: cpu.max(CPU_FLOOR_MILLIS),
            memory_mb: memory.max(floor_mb),
        });
    };
    for app in &config.apps {
        container(ContainerKind::App, &app.name, app.size, MEMORY_FLOOR_MB);
    }
    for service in &config.services {
        if development {
            container(
                ContainerKind::Service,
                &service.name,
                Size::S,
                MEMORY_FLOOR_MB,
            );
        } else {
            container(
                ContainerKind::Service,
                &service.name,
                service.size,
                PRODUCTION_SERVICE_FLOOR_MB,
            );
        }
    }
    let on_volume = |source: MountSource| {
        matches!(
            source,
            MountSource::Local | MountSource::Storage | MountSource::Instance
        )
    };
    let mut disk = Some(0u64);
    for app in &config.apps {
        let mounts = app
            .mounts
            .values()
            .chain(app.workers.values().flat_map(|w| w.mounts.values()));
        let uses_volume = mounts.into_iter().any(|m| on_volume(m.source));
        disk = match (disk, app.disk) {
            (Some(total), Some(own)) => Some(total + own),
            (Some(total), None) if !uses_volume => Some(total),
            _ => None,
        };
    }
    for service in &config.services {
        disk = disk.map(|total| total + service.disk.unwrap_or(SERVICE_DISK_WITHOUT_DISK_MB));
    }
    let count = containers.len() as u64;
    Resources {
        cpu_millis: containers.iter().map(|c| c.cpu_millis).sum(),
        memory_mb: containers.iter().map(|c| c.memory_mb).sum::<u64>() + OVERHEAD_MB,
        pids: count * PIDS_PER_CONTAINER + PIDS_OVERHEAD,
        disk_mb: disk.filter(|d| *d > 0),
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(app: &str, services: &str) -> Project {
        struct Tree(Vec<(String, Vec<u8>)>);
        impl grove_config::SourceTree for Tree {
            fn paths(&self) -> Vec<String> {
                self.0.iter().map(|(p, _)| p.clone()).collect()
            }
            fn read(&self, path: &str) -> Option<Vec<u8>> {
                self.0
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, c)| c.clone())
            }
        }
        let mut files = vec![(".platform.app.yaml".to_owned(), app.as_bytes().to_vec())];
        if !services.is_empty() {
            files.push((
                ".platform/services.yaml".to_owned(),
                services.as_bytes().to_vec(),
            ));
        }
        grove_config::load(&Tree(files)).expect("valid config")
    }

    const APP: &str = "name: app\ntype: python:3.12\nweb:\n  commands:\n    start: x\n";

    fn check(app: &str, services: &str, development: bool, expected: &str) {
        let config = project(&format!("{APP}{app}"), services);
        assert_eq!(resources(&config, development).to_string(), expected);
    }

    #[test]
    fn apps_and_services_get_groups_of_their_own_kind() {
        let config = project(APP, "app:\n  type: redis:7.2\n");
        let groups: Vec<String> = resources(&config, false)
            .containers
            .iter()
            .map(Container::group)
            .collect();
        assert_eq!(groups, ["app-app", "service-app"]);
    }

    #[test]
    fn sizes_types_floors_and_disks() {
        // AUTO: M on production, S on development; memory floored at 256 MB.
        check(
            "",
            "",
            false,
            "`app` M (288 MB): memory 416 MB, CPU 0.50, 768 processes",
        );
        check(
            "",
            "",
            true,
            "`app` S (256 MB): memory 384 MB, CPU 0.50, 768 processes",
        );
        // An explicit size holds on every type.
        check(
            "size: XL\n",
            "",
            true,
            "`app` XL (1280 MB): memory 1408 MB, CPU 2.50, 768 processes",
        );
        // Development services are always S; production ones get their floor.
        let db = "db:\n  type: mariadb:11.8\n  disk: 1024\n  size: L\n";
        check(
            "disk: 256\nmounts:\n  var:\n    source: local\n    source_path: var\n",
            db,
            true,
            "`app` S (256 MB), `db` S (256 MB): memory 640 MB, CPU 1.00, 1280 processes, disk 1280 MB",
        );
        check(
            "disk: 256\nmounts:\n  var:\n    source: local\n    source_path: var\n",
            "db:\n  type: mariadb:11.8\n  disk: 1024\ncache:\n  type: redis:7.2\n",
            false,
            "`app` M (288 MB), `cache` M (512 MB), `db` M (512 MB): memory 1440 MB, CPU 1.50, 1792 processes, disk 1408 MB",
        );
        // Local mounts without a disk: nothing to cap the volume at.
        check(
            "mounts:\n  var:\n    source: local\n    source_path: var\n",
            "",
            false,
            "`app` M (288 MB): memory 416 MB, CPU 0.50, 768 processes",
        );
    }
}
