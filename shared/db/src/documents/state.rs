//! The words of a document's lifecycle as Rust types: its state, the stage it
//! is at and the kind of an event. Each is stored as text (the migrations'
//! CHECK constraints list the same words) and read back typed, so no query or
//! handler compares strings such as `"READY"`.
//!
//! A leaf module: it depends on diesel's traits and nothing else of folio's.

use diesel::{
    deserialize::{self, FromSql},
    pg::{Pg, PgValue},
    serialize::{self, Output, ToSql},
    sql_types::Text,
};

/// An enum stored as one of a fixed set of words.
macro_rules! stored_words {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order of declaration.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The stored word.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value a stored word names.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let word = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                $name::parse(&word).ok_or_else(|| format!("{word:?} is not a {}", stringify!($name)).into())
            }
        }
    };
}

stored_words! {
    /// Where a document is in its lifecycle (the table in
    /// [`lifecycle`](super::lifecycle) says which may follow which).
    State {
        /// Stored, waiting for a worker.
        Queued => "QUEUED",
        /// A worker's try is running.
        Processing => "PROCESSING",
        /// A try failed transiently; the next one is scheduled.
        RetryWait => "RETRY_WAIT",
        /// Indexed and searchable.
        Ready => "READY",
        /// Failed for good, with a code.
        Failed => "FAILED",
        /// Cancelled by its owner; partial results removed.
        Cancelled => "CANCELLED",
    }
}

impl State {
    /// States after which nothing more happens unless a user acts.
    pub const fn is_terminal(self) -> bool {
        matches!(self, State::Ready | State::Failed | State::Cancelled)
    }
}

stored_words! {
    /// The pipeline's stages, in order.
    Stage {
        Store => "STORE",
        Parse => "PARSE",
        Chunk => "CHUNK",
        Embed => "EMBED",
        Index => "INDEX",
    }
}

stored_words! {
    /// What an event reports.
    EventKind {
        Started => "STARTED",
        Progress => "PROGRESS",
        Completed => "COMPLETED",
        Failed => "FAILED",
        RetryScheduled => "RETRY_SCHEDULED",
        Cancelled => "CANCELLED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_its_value() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(*state));
        }
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(*stage));
        }
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(State::parse("ready"), None, "words are case-sensitive, as stored");
    }

    #[test]
    fn only_ready_failed_and_cancelled_are_terminal() {
        let terminal: Vec<State> = State::ALL.iter().copied().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [State::Ready, State::Failed, State::Cancelled]);
    }
}
