//! User and group names from `/etc/passwd` and `/etc/group`.

use std::collections::HashMap;
use std::path::Path;

/// The user database.
const ETC_PASSWD: &str = "/etc/passwd";
/// The group database.
const ETC_GROUP: &str = "/etc/group";

/// User and group names by id, read once from `/etc/passwd` and `/etc/group`.
///
/// Only those two files are read, not other NSS sources (LDAP, systemd's dynamic users): an id
/// they do not name is shown as its number, which is also what happens when a file is missing.
/// As `getpwuid` does, the first line for an id wins.
///
/// # References
/// [passwd(5)](https://man7.org/linux/man-pages/man5/passwd.5.html),
/// [group(5)](https://man7.org/linux/man-pages/man5/group.5.html)
#[derive(Debug, Clone, Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// Reads `/etc/passwd` and `/etc/group`; a file that cannot be read contributes no names.
    pub fn load() -> Names {
        let read = |p: &str| std::fs::read_to_string(Path::new(p)).unwrap_or_default();
        Names::parse(&read(ETC_PASSWD), &read(ETC_GROUP))
    }

    /// Builds the tables from the text of a passwd and a group file (`name:password:id:…` lines);
    /// lines without a name or a numeric id are skipped.
    pub fn parse(passwd: &str, group: &str) -> Names {
        Names {
            users: parse_db(passwd),
            groups: parse_db(group),
        }
    }

    /// The name of user `uid`, or the number as text.
    pub fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    /// The name of group `gid`, or the number as text.
    pub fn group(&self, gid: u32) -> String {
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string())
    }
}

/// `name:password:id:...` lines → id → first name.
fn parse_db(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_password), Some(id)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // Comments and NIS compatibility entries ("+", "-name") carry no usable name.
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(id) = id.trim().parse::<u32>() {
            map.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_id_with_the_number_as_fallback() {
        let names = Names::parse(
            "root:x:0:0:root:/root:/bin/bash\n# comment\n+::::::\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\ntoor:x:0:0::/:/bin/sh\n",
            "root:x:0:\nstaff:x:50:alice,bob\nbad:x:notanumber:\n",
        );
        assert_eq!(names.user(0), "root");
        assert_eq!(names.user(1000), "alice");
        assert_eq!(names.user(4242), "4242");
        assert_eq!(names.group(50), "staff");
        assert_eq!(names.group(7), "7");
    }

    #[test]
    fn load_names_root() {
        assert_eq!(Names::load().user(0), "root");
    }
}
