export { ANONYMOUS, createIdentityResolver, identityOptionsFromConfig, type Identity, type IdentityOptions, type IdentityResolver } from "./resolver.js";
export { type Claims, InvalidTokenError, JwtVerifier, type JwtKeys, type JwtRules } from "./jwt.js";
