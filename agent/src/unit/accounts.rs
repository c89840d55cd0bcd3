//! Who may use the console: users with Argon2id password hashes, and
//! bearer tokens for scripts.
//!
//! They live in `state/accounts.json` (0600), rewritten whole (temporary
//! file, fsync, rename) under an exclusive lock on `state/accounts.lock`,
//! so `gongwen-agent user …` and `token …` work whether or not the agent
//! runs, and two administrators cannot lose each other's change. The
//! running console reads the file again when it changes. Passwords and
//! tokens are never stored: only an Argon2id hash of each password (PHC
//! string) and the SHA-256 of each token.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use gongwen_common::fsutil::write_atomic;
use serde::{Deserialize, Serialize};

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// 收发员: signs for, returns, sends and follows documents.
    Clerk,
    /// Also sees the unit's problems and status in full (and, on a
    /// supervisor unit, the province).
    Admin,
}

impl UserRole {
    pub fn parse(s: &str) -> Option<UserRole> {
        match s {
            "clerk" => Some(UserRole::Clerk),
            "admin" => Some(UserRole::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Clerk => "clerk",
            UserRole::Admin => "admin",
        }
    }
}

/// A console user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name: `[a-z0-9][a-z0-9._-]{0,63}`.
    pub name: String,
    /// 张三: shown on pages and named in receipts the user signs.
    pub display_name: String,
    pub role: UserRole,
    /// Argon2id, PHC string form.
    password: String,
    pub created_ms: i64,
}

/// A bearer token for scripts (its SHA-256; the token itself is shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Short public name, to list and revoke it by.
    pub id: String,
    pub user: String,
    sha256: String,
    pub created_ms: i64,
}

/// The accounts file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub tokens: Vec<Token>,
}

/// Why an account change or login was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    #[error(
        "{0:?} is not a valid user name: use 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    )]
    BadName(String),
    #[error("the display name must not be empty or hold control characters")]
    BadDisplayName,
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    ShortPassword,
    #[error("there is already a user named {0}")]
    Exists(String),
    #[error("there is no user named {0}")]
    NoSuchUser(String),
    #[error("there is no token {0}")]
    NoSuchToken(String),
    #[error("{path} cannot be read as the console's accounts: {detail}")]
    Damaged { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the password could not be hashed: {0}")]
    Hash(String),
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The accounts file in a state folder.
pub fn path_in(state: &Path) -> PathBuf {
    state.join("accounts.json")
}

pub fn check_user_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_owned()))
    }
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| AccountError::Hash("the system random generator failed".into()))?;
    // Argon2::default() is Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's
    // first recommendation).
    let hash: PasswordHash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Argon2 working memory (19 MiB each) kept between logins and handed
/// from one to the next. Allocated afresh for every login, on whichever
/// thread runs it, the allocator kept each block in that thread's arena:
/// 100 logins left the agent at half a gigabyte. Kept, it is allocated once
/// per login that may run at once (the console lets a few).
static KEPT_MEMORY: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());

/// Whether `password` hashes to the PHC string `phc`, hashed in kept
/// memory; the comparison takes the same time wherever they differ.
fn verify_in_kept_memory(phc: &str, password: &[u8]) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map(argon2::Version::try_from)
        .transpose()
        .map(Option::unwrap_or_default)
    else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    let taken = KEPT_MEMORY.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut memory = taken.unwrap_or_default();
    memory.resize(params.block_count(), argon2::Block::default());
    let mut out = vec![0u8; expected.as_bytes().len()];
    let hashed = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut memory[..])
        .is_ok();
    KEPT_MEMORY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(memory);
    hashed && same_bytes(&out, expected.as_bytes())
}

/// Equal, taking the same time whatever the first difference (password
/// hashes, CSRF tokens).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A hash of a random password with the same parameters as every account's,
/// made once: what an unknown name's password is checked against.
fn stand_in_hash() -> Option<&'static str> {
    static HASH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HASH.get_or_init(|| random_hex(16).and_then(|p| hash_password(&p)).ok())
        .as_deref()
}

/// SHA-256 of a token, hex: what the file keeps.
fn token_digest(token: &str) -> String {
    gongwen_common::pki::serial_hex(&gongwen_common::signed::sha256(token.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, AccountError> {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| AccountError::Hash("the system random generator failed".into()))?;
    Ok(gongwen_common::pki::serial_hex(&b))
}

impl Accounts {
    /// Read the accounts file; none yet is no accounts.
    pub fn load(path: &Path) -> Result<Accounts, AccountError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AccountError::Damaged {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Accounts::default()),
            Err(source) => Err(AccountError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Change the accounts file: read it, apply `change`, write it back,
    /// all under the lock. Nothing is written if `change` fails.
    pub fn edit<T>(
        path: &Path,
        change: impl FnOnce(&mut Accounts) -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let io = |source| AccountError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let mut accounts = Accounts::load(path)?;
        let out = change(&mut accounts)?;
        let mut text = serde_json::to_vec_pretty(&accounts).map_err(|e| AccountError::Damaged {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        text.write_all(b"\n").map_err(io)?;
        write_atomic(path, &text, 0o600).map_err(io)?;
        Ok(out)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn add_user(
        &mut self,
        name: &str,
        display_name: &str,
        role: UserRole,
        password: &str,
        now_ms: i64,
    ) -> Result<(), AccountError> {
        check_user_name(name)?;
        if display_name.trim().is_empty() || display_name.chars().any(char::is_control) {
            return Err(AccountError::BadDisplayName);
        }
        if self.user(name).is_some() {
            return Err(AccountError::Exists(name.to_owned()));
        }
        self.users.push(User {
            name: name.to_owned(),
            display_name: display_name.trim().to_owned(),
            role,
            password: hash_password(password)?,
            created_ms: now_ms,
        });
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), AccountError> {
        let hash = hash_password(password)?;
        let user = self
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))?;
        user.password = hash;
        Ok(())
    }

    /// Remove a user and every token of theirs.
    pub fn remove_user(&mut self, name: &str) -> Result<(), AccountError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(AccountError::NoSuchUser(name.to_owned()));
        }
        self.tokens.retain(|t| t.user != name);
        Ok(())
    }

    /// The user, if `password` is theirs. (The caller limits attempts.)
    /// An unknown name costs the same hash as a known one, so the time an
    /// answer takes does not tell which names exist.
    pub fn check_password(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.user(name);
        let phc = match user {
            Some(u) => u.password.as_str(),
            None => stand_in_hash()?,
        };
        let right = verify_in_kept_memory(phc, password.as_bytes());
        user.filter(|_| right)
    }

    /// A new token for `user`: returns its id and the token itself, which
    /// is shown once and never stored.
    pub fn create_token(
        &mut self,
        user: &str,
        now_ms: i64,
    ) -> Result<(String, String), AccountError> {
        if self.user(user).is_none() {
            return Err(AccountError::NoSuchUser(user.to_owned()));
        }
        let id = format!("t-{}", random_hex(4)?);
        let token = format!("gw_{}_{}", &id[2..], random_hex(32)?);
        self.tokens.push(Token {
            id: id.clone(),
            user: user.to_owned(),
            sha256: token_digest(&token),
            created_ms: now_ms,
        });
        Ok((id, token))
    }

    pub fn revoke_token(&mut self, id: &str) -> Result<(), AccountError> {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.id != id);
        if self.tokens.len() == before {
            return Err(AccountError::NoSuchToken(id.to_owned()));
        }
        Ok(())
    }

    /// The user a bearer token belongs to.
    pub fn user_for_token(&self, token: &str) -> Option<&User> {
        let digest = token_digest(token);
        let t = self.tokens.iter().find(|t| t.sha256 == digest)?;
        self.user(&t.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_checked_and_removed_with_their_tokens() {
        let d = tempfile::tempdir().unwrap();
        let path = path_in(d.path());
        Accounts::edit(&path, |a| {
            a.add_user("li.si", "李四", UserRole::Clerk, "正确的密码123", 1)
        })
        .unwrap();
        let a = Accounts::load(&path).unwrap();
        assert_eq!(
            a.check_password("li.si", "正确的密码123")
                .unwrap()
                .display_name,
            "李四"
        );
        assert!(a.check_password("li.si", "wrong password").is_none());
        assert!(a.check_password("nobody", "正确的密码123").is_none());
        // The file holds a hash, never the password.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("正确的密码123") && text.contains("$argon2id$"),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let (id, token) = Accounts::edit(&path, |a| a.create_token("li.si", 2)).unwrap();
        let a = Accounts::load(&path).unwrap();
        assert_eq!(a.user_for_token(&token).unwrap().name, "li.si");
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&token));
        assert!(a.user_for_token("gw_nothing").is_none());
        Accounts::edit(&path, |a| a.remove_user("li.si")).unwrap();
        let a = Accounts::load(&path).unwrap();
        assert!(a.user("li.si").is_none());
        assert!(
            a.user_for_token(&token).is_none(),
            "token {id} outlived its user"
        );
    }

    #[test]
    fn bad_names_short_passwords_and_duplicates_are_refused_and_change_nothing() {
        let d = tempfile::tempdir().unwrap();
        let path = path_in(d.path());
        for bad in ["", "Zhang", "-x", "张三", "a b", &"a".repeat(65)] {
            assert!(
                matches!(check_user_name(bad), Err(AccountError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Accounts::edit(&path, |a| a.add_user(
                "zhang",
                "张三",
                UserRole::Admin,
                "short",
                1
            )),
            Err(AccountError::ShortPassword)
        ));
        assert!(!path.exists(), "a refused change wrote the file");
        Accounts::edit(&path, |a| {
            a.add_user("zhang", "张三", UserRole::Admin, "long enough", 1)
        })
        .unwrap();
        assert!(matches!(
            Accounts::edit(&path, |a| a.add_user(
                "zhang",
                "张三",
                UserRole::Admin,
                "long enough",
                1
            )),
            Err(AccountError::Exists(_))
        ));
        assert!(matches!(
            Accounts::edit(&path, |a| a.revoke_token("t-00000000")),
            Err(AccountError::NoSuchToken(_))
        ));
    }
}
