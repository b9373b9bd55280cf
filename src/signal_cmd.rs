//! `weir --signal CMD[=PID]` (`-sl`): send a running weir server one of nats-server's
//! signal commands, as `nats-server --signal` does. Deployment tools call it: the NATS Helm
//! chart's preStop hook runs `nats-server -sl=ldm=/var/run/nats/nats.pid`.
//!
//! Commands and signals (nats-server's): `stop` SIGKILL, `quit` SIGINT, `term` SIGTERM,
//! `reopen` SIGUSR1 (log file), `reload` SIGHUP (config file), `ldm` SIGUSR2 (lame duck).
//! `PID` is a process id or the path of a pid file (`-P`); without it the one running
//! process named like this executable is signalled, and several of them are an error that
//! lists them. Errors use nats-server's words: `unknown signal "x"`, `invalid pid: x`,
//! `multiple weir processes running:` followed by the pids.

/// The signal a nats-server signal command sends, or `None` for an unknown command.
pub fn signal_of(command: &str) -> Option<libc::c_int> {
    Some(match command {
        "stop" => libc::SIGKILL,
        "quit" => libc::SIGINT,
        "term" => libc::SIGTERM,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        "ldm" => libc::SIGUSR2,
        _ => return None,
    })
}

/// A pid as given: a number, else the path of a file holding one (surrounding
/// whitespace ignored). Anything else is `invalid pid: EXPR`.
pub fn resolve_pid(expr: &str) -> Result<i32, String> {
    let invalid = || format!("invalid pid: {expr}");
    let number = |s: &str| s.trim().parse::<i32>().ok().filter(|p| *p > 0);
    if let Some(p) = number(expr) {
        return Ok(p);
    }
    let text = std::fs::read_to_string(expr).map_err(|_| invalid())?;
    number(&text).ok_or_else(|| format!("invalid pid: {}", text.trim()))
}

/// The ids of running processes whose command name is `name`, other than this one
/// (read from `/proc`), in ascending order.
fn pids_named(name: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me)
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim_end() == name))
        .collect();
    pids.sort_unstable();
    pids
}

/// Run `--signal EXPR`: `EXPR` is `CMD` or `CMD=PID` (see the module doc).
pub fn run(expr: &str) -> Result<(), String> {
    let (command, pid_expr) = match expr.split_once('=') {
        Some((c, p)) => (c, Some(p)),
        None => (expr, None),
    };
    let sig = signal_of(command).ok_or_else(|| format!("unknown signal \"{command}\""))?;
    let pid = match pid_expr {
        Some(p) => resolve_pid(p)?,
        None => {
            let exe = std::env::current_exe().ok();
            let name = exe.as_ref().and_then(|e| e.file_name()).and_then(|n| n.to_str()).unwrap_or("weir");
            // /proc/PID/comm holds at most 15 bytes of the name.
            let comm: String = name.chars().take(15).collect();
            match pids_named(&comm).as_slice() {
                [] => return Err(format!("no {name} process running, give its pid: --signal {command}=PID")),
                [p] => *p,
                many => {
                    let list: Vec<String> = many.iter().map(i32::to_string).collect();
                    return Err(format!("multiple {name} processes running:\n{}", list.join("\n")));
                }
            }
        }
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        let msg = if e.raw_os_error() == Some(libc::ESRCH) { "no such process".to_owned() } else { e.to_string() };
        return Err(format!("signal \"{command}\" {pid}: {msg}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_nats_servers_signals_and_pids_resolve() {
        assert_eq!(signal_of("ldm"), Some(libc::SIGUSR2));
        assert_eq!(signal_of("reload"), Some(libc::SIGHUP));
        assert_eq!(signal_of("reopen"), Some(libc::SIGUSR1));
        assert_eq!(signal_of("quit"), Some(libc::SIGINT));
        assert_eq!(signal_of("bogus"), None);
        assert_eq!(run("bogus=1").unwrap_err(), "unknown signal \"bogus\"");
        assert_eq!(resolve_pid("123"), Ok(123));
        assert_eq!(resolve_pid("abc").unwrap_err(), "invalid pid: abc");
        let f = std::env::temp_dir().join(format!("weir-sigcmd-{}.pid", std::process::id()));
        std::fs::write(&f, "4567\n").unwrap();
        assert_eq!(resolve_pid(f.to_str().unwrap()), Ok(4567));
        std::fs::write(&f, "12x").unwrap();
        assert_eq!(resolve_pid(f.to_str().unwrap()).unwrap_err(), "invalid pid: 12x");
        let _ = std::fs::remove_file(&f);
    }
}
