//! The components `sluice dev` runs (Postgres, the control plane; later brokers and an S3
//! endpoint), watched until a shutdown signal and stopped in reverse start order, so
//! that nothing loses the services it depends on while it is still running.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use anyhow::Context;
use sluice_devkit::{ChildProcess, PgCluster};

/// Something `sluice dev` started and must watch and stop.
pub trait Component {
    /// A short name for messages.
    fn name(&self) -> String;
    /// Fails (with its log tail) when the component stopped on its own.
    fn check(&mut self) -> anyhow::Result<()>;
    /// Stops it; called once, in reverse start order.
    fn stop(&mut self) -> anyhow::Result<()>;
}

impl Component for PgCluster {
    fn name(&self) -> String {
        "postgres".into()
    }
    fn check(&mut self) -> anyhow::Result<()> {
        Ok(self.ensure_running()?)
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        Ok(PgCluster::stop(self)?)
    }
}

impl Component for ChildProcess {
    fn name(&self) -> String {
        ChildProcess::name(self).to_string()
    }
    fn check(&mut self) -> anyhow::Result<()> {
        Ok(self.ensure_running()?)
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        ChildProcess::stop(self)?;
        Ok(())
    }
}

/// Components in start order.
#[derive(Default)]
pub struct Supervisor {
    components: Vec<Box<dyn Component>>,
}

impl Supervisor {
    /// Adds a started component; it is stopped before every component added earlier.
    pub fn add(&mut self, component: impl Component + 'static) {
        self.components.push(Box::new(component));
    }

    /// Returns `Ok` once `shutdown` is set, or an error as soon as a component stops on
    /// its own.
    pub fn watch(&mut self, shutdown: &AtomicBool) -> anyhow::Result<()> {
        while !shutdown.load(Ordering::Relaxed) {
            for component in &mut self.components {
                let name = component.name();
                component
                    .check()
                    .with_context(|| format!("{name} stopped unexpectedly"))?;
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Stops every component, newest first, reporting (not propagating) failures so that
    /// the rest still get stopped.
    pub fn stop_all(&mut self) {
        while let Some(mut component) = self.components.pop() {
            let name = component.name();
            eprintln!("stopping {name}");
            if let Err(err) = component.stop() {
                eprintln!("stopping {name}: {err:#}");
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}
