//! The user's password, kept in wiped memory.

use zeroize::Zeroizing;

/// A password (any bytes; usually UTF-8). Wiped from memory on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    /// Wraps the given bytes or string. Passing an owned `String` / `Vec<u8>` moves it without
    /// leaving a copy behind.
    pub fn new(password: impl Into<Vec<u8>>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// The password bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_leak() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "Password(..)");
        assert_eq!(p.as_bytes(), b"hunter2");
        assert_eq!(Password::from(String::from("x")).as_bytes(), b"x");
    }
}
