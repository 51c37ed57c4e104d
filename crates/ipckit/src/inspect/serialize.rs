//! `serde::Serialize` for the inspect types (feature `serde`), in the shape `ipckit ls --json`
//! and `ipckit gc --json` print: each object says its `"kind"` (`"sysv-shm"` …), System V keys are
//! `"0x%08x"`, permission bits four octal digits (`"0640"`), times RFC 3339 in UTC or `null`
//! when never set, and field names are ipcs's (`messages`, `used_bytes`, `maxmsg` …). What needs
//! more than the object itself (user names, attached PIDs) is for the caller to add, for example
//! with `#[serde(flatten)]`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::gc::{Kind, Orphan};
use super::posix::{PosixMqInfo, PosixSemInfo, PosixShmInfo};
use super::sysv::{Attachments, MsgInfo, SemInfo, ShmInfo};

/// Permission bits as four octal digits, as `chmod` takes them.
fn perms(mode: u32) -> String {
    format!("{:04o}", mode & 0o777)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; `None` for a time before the epoch or past year 9999.
fn rfc3339(time: SystemTime) -> Option<String> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    let nanos = since.subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    Some(text)
}

fn time(t: Option<SystemTime>) -> Option<String> {
    t.and_then(rfc3339)
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The fields of every System V object: kind, key, id, owner and creator ids, permissions.
fn sysv_common<S: SerializeStruct>(
    st: &mut S,
    kind: Kind,
    key: crate::Key,
    id: i32,
    mode: u32,
    [uid, gid, cuid, cgid]: [u32; 4],
) -> Result<(), S::Error> {
    st.serialize_field("kind", &kind)?;
    st.serialize_field("key", &key.to_string())?;
    st.serialize_field("id", &id)?;
    st.serialize_field("uid", &uid)?;
    st.serialize_field("gid", &gid)?;
    st.serialize_field("cuid", &cuid)?;
    st.serialize_field("cgid", &cgid)?;
    st.serialize_field("perms", &perms(mode))
}

/// `kind`, `key`, `id`, `uid`, `gid`, `cuid`, `cgid`, `perms`, `size`, `nattch`, `dest`, `locked`,
/// `cpid`, `lpid`, `rss`, `swap`, `atime`, `dtime`, `ctime`.
impl Serialize for ShmInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ShmInfo", 19)?;
        let ids = [self.uid, self.gid, self.cuid, self.cgid];
        sysv_common(&mut st, Kind::SysvShm, self.key, self.id, self.mode, ids)?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("nattch", &self.nattch)?;
        st.serialize_field("dest", &self.is_marked_for_removal())?;
        st.serialize_field("locked", &self.is_locked())?;
        st.serialize_field("cpid", &self.cpid)?;
        st.serialize_field("lpid", &self.lpid)?;
        st.serialize_field("rss", &self.rss)?;
        st.serialize_field("swap", &self.swap)?;
        st.serialize_field("atime", &time(self.atime))?;
        st.serialize_field("dtime", &time(self.dtime))?;
        st.serialize_field("ctime", &time(self.ctime))?;
        st.end()
    }
}

/// `kind`, `key`, `id`, `uid`, `gid`, `cuid`, `cgid`, `perms`, `nsems`, `otime`, `ctime`.
impl Serialize for SemInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SemInfo", 11)?;
        let ids = [self.uid, self.gid, self.cuid, self.cgid];
        sysv_common(&mut st, Kind::SysvSem, self.key, self.id, self.mode, ids)?;
        st.serialize_field("nsems", &self.nsems)?;
        st.serialize_field("otime", &time(self.otime))?;
        st.serialize_field("ctime", &time(self.ctime))?;
        st.end()
    }
}

/// `kind`, `key`, `id`, `uid`, `gid`, `cuid`, `cgid`, `perms`, `messages`, `used_bytes`, `lspid`,
/// `lrpid`, `stime`, `rtime`, `ctime`.
impl Serialize for MsgInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MsgInfo", 15)?;
        let ids = [self.uid, self.gid, self.cuid, self.cgid];
        sysv_common(&mut st, Kind::SysvMsg, self.key, self.id, self.mode, ids)?;
        st.serialize_field("messages", &self.qnum)?;
        st.serialize_field("used_bytes", &self.cbytes)?;
        st.serialize_field("lspid", &self.lspid)?;
        st.serialize_field("lrpid", &self.lrpid)?;
        st.serialize_field("stime", &time(self.stime))?;
        st.serialize_field("rtime", &time(self.rtime))?;
        st.serialize_field("ctime", &time(self.ctime))?;
        st.end()
    }
}

/// A POSIX name, losslessly: `"name"` is the name itself when it is UTF-8; otherwise it is the
/// name with each byte that is not part of a UTF-8 character written `\xNN`
/// ([`display_name`](super::display_name)), and `"name_bytes"` follows with every byte of the
/// name as a number (absent for UTF-8 names).
fn posix_name<S: SerializeStruct>(st: &mut S, name: &OsStr) -> Result<(), S::Error> {
    st.serialize_field("name", &super::display_name(name))?;
    if name.to_str().is_some() {
        st.skip_field("name_bytes")
    } else {
        st.serialize_field("name_bytes", name.as_bytes())
    }
}

/// `pid`, `count`: one element of a segment's `"attachments"` in `ipckit ls --json`.
impl Serialize for Attachments {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Attachments", 2)?;
        st.serialize_field("pid", &self.pid)?;
        st.serialize_field("count", &self.count)?;
        st.end()
    }
}

/// The fields of every POSIX object: kind, name (and `name_bytes`), owner ids, permissions.
fn posix_common<S: SerializeStruct>(
    st: &mut S,
    kind: Kind,
    name: &OsStr,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), S::Error> {
    st.serialize_field("kind", &kind)?;
    posix_name(st, name)?;
    st.serialize_field("uid", &uid)?;
    st.serialize_field("gid", &gid)?;
    st.serialize_field("perms", &perms(mode))
}

/// `kind`, `name`, `uid`, `gid`, `perms`, `size`, `mtime`, `ctime`.
impl Serialize for PosixShmInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PosixShmInfo", 8)?;
        posix_common(
            &mut st,
            Kind::PosixShm,
            &self.name,
            self.mode,
            self.uid,
            self.gid,
        )?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("mtime", &rfc3339(self.mtime))?;
        st.serialize_field("ctime", &rfc3339(self.ctime))?;
        st.end()
    }
}

/// `kind`, `name`, `uid`, `gid`, `perms`, `value` (`null` when it cannot be read), `mtime`,
/// `ctime`.
impl Serialize for PosixSemInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PosixSemInfo", 8)?;
        posix_common(
            &mut st,
            Kind::PosixSem,
            &self.name,
            self.mode,
            self.uid,
            self.gid,
        )?;
        st.serialize_field("value", &self.value)?;
        st.serialize_field("mtime", &rfc3339(self.mtime))?;
        st.serialize_field("ctime", &rfc3339(self.ctime))?;
        st.end()
    }
}

/// `kind`, `name`, `uid`, `gid`, `perms`, `messages`, `maxmsg`, `msgsize` (each `null` when the
/// queue cannot be opened), `used_bytes`, `notify_pid`, `mtime`, `ctime`.
impl Serialize for PosixMqInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PosixMqInfo", 12)?;
        posix_common(
            &mut st,
            Kind::PosixMq,
            &self.name,
            self.mode,
            self.uid,
            self.gid,
        )?;
        st.serialize_field("messages", &self.messages)?;
        st.serialize_field("maxmsg", &self.max_messages)?;
        st.serialize_field("msgsize", &self.message_size)?;
        st.serialize_field("used_bytes", &self.used_bytes)?;
        st.serialize_field("notify_pid", &self.notify_pid)?;
        st.serialize_field("mtime", &rfc3339(self.mtime))?;
        st.serialize_field("ctime", &rfc3339(self.ctime))?;
        st.end()
    }
}

/// `kind`, then `id` and `key` (System V) or `name` (POSIX), and `reason`.
impl Serialize for Orphan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Orphan", 5)?;
        st.serialize_field("kind", &self.kind)?;
        match self.id() {
            Some(id) => st.serialize_field("id", &id)?,
            None => st.skip_field("id")?,
        }
        match self.key {
            Some(key) => st.serialize_field("key", &key.to_string())?,
            None => st.skip_field("key")?,
        }
        match self.os_name() {
            Some(name) => posix_name(&mut st, name)?,
            None => {
                st.skip_field("name")?;
                st.skip_field("name_bytes")?;
            }
        }
        st.serialize_field("reason", &self.reason)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        let at = |secs, nanos| rfc3339(UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(at(0, 0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            at(1_700_000_000, 0).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(at(951_782_400, 0).as_deref(), Some("2000-02-29T00:00:00Z"));
        assert_eq!(
            at(1_795_279_738, 500_000_000).as_deref(),
            Some("2026-11-21T16:48:58.5Z")
        );
        assert_eq!(
            at(4_107_542_399, 1).as_deref(),
            Some("2100-02-28T23:59:59.000000001Z")
        );
        assert_eq!(at(253_402_300_800, 0), None, "year 10000");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), None);
    }

    #[test]
    fn a_segment_serializes_as_ls_json_prints_it() {
        let table = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
    -559038737          7   1600                  4096  1234  1240      2  1000   100     0     0 1700000100          0 1700000000                  8192                     0
";
        let shm = crate::inspect::parse_shm(table, std::path::Path::new("shm")).unwrap();
        let json = serde_json::to_value(&shm[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "sysv-shm", "key": "0xdeadbeef", "id": 7, "uid": 1000, "gid": 100,
                "cuid": 0, "cgid": 0, "perms": "0600", "size": 4096, "nattch": 2,
                "dest": true, "locked": false, "cpid": 1234, "lpid": 1240, "rss": 8192,
                "swap": 0, "atime": "2023-11-14T22:15:00Z", "dtime": null,
                "ctime": "2023-11-14T22:13:20Z"
            })
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_escaped_and_given_as_bytes() {
        #[derive(Debug)]
        struct Named<'a>(&'a OsStr);
        impl Serialize for Named<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("Named", 2)?;
                posix_name(&mut st, self.0)?;
                st.end()
            }
        }
        let json = |name: &[u8]| serde_json::to_value(Named(OsStr::from_bytes(name))).unwrap();
        assert_eq!(
            json(b"/a\nb"),
            serde_json::json!({"name": "/a\nb"}),
            "UTF-8, control characters and all, is itself"
        );
        assert_eq!(
            json(b"/x\xff"),
            serde_json::json!({"name": "/x\\xff", "name_bytes": [47, 120, 255]})
        );
    }

    #[test]
    fn permissions_are_four_octal_digits() {
        assert_eq!(perms(0o1640), "0640");
        assert_eq!(perms(0o7), "0007");
    }
}
