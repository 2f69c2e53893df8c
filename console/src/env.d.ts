// Style sheets are bundled by esbuild into main.css; importing one yields nothing.
declare module "*.css";
