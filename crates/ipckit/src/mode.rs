//! Permission modes of the objects ipckit creates, shared by every mechanism: System V objects,
//! POSIX shared memory, semaphores and message queues, FIFOs and channels all take the same nine
//! permission bits, default to [`DEFAULT_MODE`], and reject anything else before a system call.

use crate::error::{Error, Object, Result};

/// The default permission bits of objects ipckit creates: read and write for the owner only
/// (less the umask, for objects with a name in a file system).
pub const DEFAULT_MODE: u32 = 0o600;

/// Checks a permission mode given by a caller: only the 9 permission bits are allowed.
pub(crate) fn check_mode(op: &'static str, object: &Object, mode: u32) -> Result<libc::c_int> {
    if mode & !0o777 != 0 {
        return Err(Error::invalid(
            op,
            object.clone(),
            format!("mode {mode:#o} has bits outside 0777"),
        ));
    }
    Ok(mode as libc::c_int)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_outside_permission_bits_is_rejected() {
        let obj = Object::ShmId(1);
        assert_eq!(check_mode("shmget", &obj, 0o640).unwrap(), 0o640);
        assert!(check_mode("shmget", &obj, 0o1777).is_err());
        assert!(check_mode("shmget", &obj, 0o4000).is_err());
    }
}
