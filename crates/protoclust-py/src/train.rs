//! `train`: a run from a config file or dict, with a per-step callback that may stop it;
//! Ctrl-C leaves `last` to resume from and raises KeyboardInterrupt.

use crate::errors::{as_py, Kind};
use protoclust::config::{self, RunConfig};
use protoclust::{device, runner};
use protoclust_train::{StepEvent, StepHook};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The resolved config of a path or dict with dotted-key overrides.
fn resolve(
    path: Option<PathBuf>,
    table: Option<&Bound<'_, PyDict>>,
    overrides: &Bound<'_, PyDict>,
) -> PyResult<RunConfig> {
    let config_err = as_py(Kind::Config);
    let (mut t, origin) = match (path, table) {
        (Some(p), None) => {
            let origin = p.display().to_string();
            let text = config::read(&p).map_err(&config_err)?;
            (
                config::parse_table(&text, &origin).map_err(&config_err)?,
                origin,
            )
        }
        (None, Some(d)) => {
            let t: toml::Table = pythonize::depythonize(d.as_any()).map_err(|e| {
                config_err(anyhow::anyhow!(
                    "config dict: {e} (values must be TOML-like: str, int, float, bool, lists, dicts)"
                ))
            })?;
            (t, "config dict".to_string())
        }
        _ => {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "train: give exactly one of a config path and a config dict",
            ))
        }
    };
    for (k, v) in overrides.iter() {
        let key: String = k.extract()?;
        let value: toml::Value = pythonize::depythonize(&v)
            .map_err(|e| config_err(anyhow::anyhow!("overrides[{key:?}]: {e}")))?;
        config::set_value(&mut t, &key, value)
            .map_err(|e| config_err(anyhow::anyhow!("overrides[{key:?}]: {e}")))?;
    }
    config::from_table(t, &origin).map_err(config_err)
}

/// A step as the Python callback sees it.
fn event_dict<'py>(py: Python<'py>, ev: &StepEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("iteration", ev.iteration)?;
    d.set_item("total", ev.total)?;
    d.set_item("epoch", ev.epoch)?;
    d.set_item("loss", ev.loss)?;
    d.set_item("lr", ev.lr)?;
    d.set_item("img_per_s", ev.img_per_s)?;
    for (name, v) in ev.metrics {
        d.set_item(name, v)?;
    }
    Ok(d)
}

/// The hook: a stop asked for (Ctrl-C, seen by the calling thread), then the callback; an
/// exception or `False` stops the run (the exception is kept to be raised once `last` is
/// written).
fn hook(
    callback: Option<Py<PyAny>>,
    stop: Arc<AtomicBool>,
    pending: Arc<Mutex<Option<PyErr>>>,
) -> StepHook {
    Arc::new(move |ev: &StepEvent| {
        if stop.load(Ordering::SeqCst) {
            return ControlFlow::Break(());
        }
        let Some(cb) = &callback else {
            return ControlFlow::Continue(());
        };
        Python::attach(|py| {
            let go = event_dict(py, ev)
                .and_then(|d| cb.call1(py, (d,)))
                .map(|ret| !ret.bind(py).is(PyBool::new(py, false).as_any()));
            match go {
                Ok(true) => ControlFlow::Continue(()),
                Ok(false) => ControlFlow::Break(()),
                Err(e) => {
                    *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
    })
}

/// Runs `work` on its own thread while the calling thread (Python's main thread in a script
/// or notebook, where signal handlers run) checks for Ctrl-C every 50 ms; a signal's exception
/// is kept in `pending` and `stop` set, so the training loop stops at its next step.
fn watching_signals<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    pending: &Mutex<Option<PyErr>>,
    work: impl FnOnce() -> T + Send,
) -> T {
    py.detach(|| {
        std::thread::scope(|s| {
            let worker = s.spawn(work);
            while !worker.is_finished() {
                std::thread::park_timeout(Duration::from_millis(50));
                if stop.load(Ordering::SeqCst) {
                    continue;
                }
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    stop.store(true, Ordering::SeqCst);
                }
            }
            match worker.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    })
}

/// Trains; returns the run's summary as a dict.
#[pyfunction]
#[pyo3(signature = (*, path=None, table=None, overrides, resume=None, callback=None, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn train<'py>(
    py: Python<'py>,
    path: Option<PathBuf>,
    table: Option<&Bound<'py, PyDict>>,
    overrides: &Bound<'py, PyDict>,
    resume: Option<Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = resolve(path, table, overrides)?;
    let resume: Option<PathBuf> = match resume {
        None => None,
        Some(r) if r.is_instance_of::<PyBool>() => r
            .extract::<bool>()?
            .then(|| protoclust_train::engine::last_checkpoint_path(&cfg.train.run_dir)),
        Some(r) => Some(r.extract()?),
    };
    let threads = threads.or((cfg.train.threads > 0).then_some(cfg.train.threads));
    let pending = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let on_step = hook(callback, stop.clone(), pending.clone());
    let warnings = cfg.warnings();
    let run_dir = cfg.train.run_dir.clone();
    let out = watching_signals(py, &stop, &pending, || -> anyhow::Result<_> {
        let dev = device::select()?;
        crate::pool::run_on(threads, || {
            runner::run_with_hook(&cfg, resume.as_deref(), true, &dev, on_step)
                .map(|s| s.map_model(|_| ()))
        })?
    });
    if let Some(e) = pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let s = out.map_err(as_py(Kind::Other))?;
    let d = PyDict::new(py);
    d.set_item("run_dir", run_dir)?;
    d.set_item("checkpoint", s.last_checkpoint)?;
    d.set_item("iterations", s.iterations)?;
    d.set_item("epochs", s.epochs)?;
    d.set_item("wall_seconds", s.wall_seconds)?;
    d.set_item("last_epoch_loss", s.last_epoch_loss)?;
    d.set_item("stopped", s.stopped)?;
    d.set_item("skipped_images", s.skipped_images)?;
    d.set_item("warnings", warnings)?;
    Ok(d)
}
