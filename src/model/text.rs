//! `text_enum!`: a closed set of values stored and sent as fixed text. It derives sea-orm's
//! `DeriveActiveEnum` (so an entity column can hold the type, and a stored value outside the
//! set is a database error that names it), serde with the same text, `as_str`, `parse`,
//! `FromStr` (an error naming the value) and `Display`.

/// A stored or received text that is not one of a type's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// What was being read (`"team role"`).
    pub what: &'static str,
    pub value: String,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} '{}'", self.what, self.value)
    }
}

impl std::error::Error for Unknown {}

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter,
            sea_orm::DeriveActiveEnum, serde::Serialize, serde::Deserialize,
        )]
        #[sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::None)")]
        $vis enum $name {
            $( $(#[$vmeta])* #[sea_orm(string_value = $text)] #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The value spelled `text`, if it is one.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::text::Unknown;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text).ok_or_else(|| $crate::model::text::Unknown {
                    what: $what,
                    value: text.to_string(),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;
