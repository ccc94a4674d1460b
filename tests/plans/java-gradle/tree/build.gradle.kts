java {
    toolchain {
        languageVersion = JavaLanguageVersion.of(21)
    }
}
