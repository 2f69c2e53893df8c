export { ANONYMOUS, createIdentityResolver, identityOptionsFromConfig, type Identity, type IdentityOptions, type IdentityResolver, type VerifiedToken } from "./resolver.js";
export { DEVELOPMENT_SECRET_FILE, developmentSecret, tokenVerificationConfigured } from "./development.js";
export { type Claims, InvalidTokenError, JwtVerifier, type JwtKeys, type JwtRules } from "./jwt.js";
