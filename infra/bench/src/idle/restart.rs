//! A broker restart with every queue present: a message is published with
//! confirm to one queue, the broker is stopped (SIGTERM and its own
//! shutdown, or SIGKILL) and started on the same data, and then: how long
//! until `/readyz` answered, until a first publish to another queue was
//! confirmed (both from the new process's start), and whether the message
//! published before the restart can still be received (nothing lost).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::probe;
use crate::report::round3;
use crate::target::{Stop, Target};

/// Pause between publishes that the restarted broker refused.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

pub struct Restart {
    pub stop: Stop,
    pub ok: bool,
    report: Value,
}

impl Restart {
    pub fn to_json(&self) -> Value {
        self.report.clone()
    }

    /// Seconds from the new process's start to `/readyz`, when it got there.
    pub fn ready_s(&self) -> Value {
        self.report["ready_s"].clone()
    }

    /// Seconds from the new process's start to the first confirmed publish.
    pub fn first_publish_s(&self) -> Value {
        self.report["first_publish_s"].clone()
    }
}

/// Restarts the broker of `target` as `stop` says, with `survivor` holding
/// a message across the restart and `first` taking the first publish
/// after it. The new broker gets up to `ready_within` to be ready; the
/// first publish is retried until `deadline`.
pub async fn restart(
    target: &mut Target,
    stop: Stop,
    survivor: &str,
    first: &str,
    ready_within: Duration,
    deadline: Instant,
) -> Restart {
    let mut errors = Vec::new();
    let survivor_body = format!("survivor-{}", stop.name());
    let client = target.data_client();
    let survivor_published = match probe::publish(&client, survivor, &survivor_body).await {
        Ok(_) => true,
        Err(error) => {
            errors.push(format!("before the restart: {error:#}"));
            false
        }
    };
    let log = match stop {
        Stop::Graceful => "after-sigterm",
        Stop::Kill => "after-sigkill",
    };
    let restarted = match target.restart_broker(stop, log, ready_within).await {
        Ok(restarted) => restarted,
        Err(error) => {
            errors.push(format!("restart: {error:#}"));
            return Restart {
                stop,
                ok: false,
                report: json!({"stop": stop.name(), "ready_s": null, "first_publish_s": null, "errors": errors}),
            };
        }
    };
    let client = target.data_client();

    // The first confirmed publish, counted from the process start: readiness
    // promises the queues are open, this shows whether they take messages.
    let first_body = format!("first-after-{}", stop.name());
    let mut attempts = 0;
    let mut first_publish = None;
    while Instant::now() < deadline {
        attempts += 1;
        match probe::publish(&client, first, &first_body).await {
            Ok(_) => {
                first_publish = Some(restarted.started.elapsed());
                break;
            }
            Err(error) => {
                if errors.len() < 5 {
                    errors.push(format!("first publish, attempt {attempts}: {error:#}"));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    // Leave that queue empty again, as the others.
    if first_publish.is_some()
        && let Err(error) = probe::receive_and_ack(&client, first, &[&first_body]).await
    {
        errors.push(format!("after the restart: {error:#}"));
    }
    let survived = if survivor_published {
        match probe::receive_and_ack(&client, survivor, &[&survivor_body]).await {
            Ok(_) => true,
            Err(error) => {
                errors.push(format!(
                    "the message published before the restart: {error:#}"
                ));
                false
            }
        }
    } else {
        false
    };
    let secs = |duration: Duration| round3(duration.as_secs_f64());
    Restart {
        stop,
        ok: first_publish.is_some() && survived,
        report: json!({
            "stop": stop.name(),
            "stop_s": secs(restarted.stopped),
            "exit": restarted.exit,
            "exited_cleanly": restarted.exited_cleanly,
            "ready_s": secs(restarted.ready),
            "first_publish_s": first_publish.map(secs),
            "first_publish_attempts": attempts,
            "published_before_received_after": survived,
            "errors": errors,
        }),
    }
}
