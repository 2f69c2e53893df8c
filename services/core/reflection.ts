import { create, fromBinary, toBinary, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionAlpha,
  ServerReflectionRequestSchema as ServerReflectionRequestAlphaSchema,
  ServerReflectionResponseSchema as ServerReflectionResponseAlphaSchema,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The files that define the served services, by file name and by every symbol they declare. */
interface Schema {
  readonly services: readonly string[];
  readonly files: ReadonlyMap<string, DescFile>;
  readonly symbols: ReadonlyMap<string, DescFile>;
}

function indexMessage(message: DescMessage, symbols: Map<string, DescFile>): void {
  symbols.set(message.typeName, message.file);
  for (const nested of message.nestedMessages) indexMessage(nested, symbols);
  for (const nested of message.nestedEnums) symbols.set(nested.typeName, nested.file);
  for (const extension of message.nestedExtensions) symbols.set(extension.typeName, extension.file);
}

function indexSchema(services: readonly DescService[]): Schema {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
    for (const message of file.messages) indexMessage(message, symbols);
    for (const enumeration of file.enums) symbols.set(enumeration.typeName, file);
    for (const extension of file.extensions) symbols.set(extension.typeName, file);
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const service of services) visit(service.file);
  return { services: [...new Set(services.map((service) => service.typeName))].sort(), files, symbols };
}

/** `file` first, then every file it imports, directly or not, each once. */
function withImports(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (current: DescFile): void => {
    if (seen.has(current.proto.name)) return;
    seen.add(current.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, current.proto));
    for (const dependency of current.dependencies) visit(dependency);
  };
  visit(file);
  return out;
}

/** The answer to one reflection question. */
function answer(schema: Schema, request: ServerReflectionRequest): ServerReflectionResponse {
  const notFound = (what: string): ServerReflectionResponse["messageResponse"] => ({
    case: "errorResponse",
    value: { $typeName: "grpc.reflection.v1.ErrorResponse", errorCode: Code.NotFound, errorMessage: `${what.slice(0, 300)} not found` },
  });
  const files = (file: DescFile | undefined, what: string): ServerReflectionResponse["messageResponse"] =>
    file === undefined ? notFound(what) : { case: "fileDescriptorResponse", value: { $typeName: "grpc.reflection.v1.FileDescriptorResponse", fileDescriptorProto: withImports(file) } };
  const question = request.messageRequest;
  let messageResponse: ServerReflectionResponse["messageResponse"];
  switch (question.case) {
    case "listServices":
      messageResponse = {
        case: "listServicesResponse",
        value: {
          $typeName: "grpc.reflection.v1.ListServiceResponse",
          service: schema.services.map((name) => ({ $typeName: "grpc.reflection.v1.ServiceResponse", name })),
        },
      };
      break;
    case "fileByFilename":
      messageResponse = files(schema.files.get(question.value), `file ${question.value}`);
      break;
    case "fileContainingSymbol": {
      // A field or enum value is found through the message or enum that declares it.
      const symbol = question.value;
      const parent = symbol.slice(0, Math.max(0, symbol.lastIndexOf(".")));
      messageResponse = files(schema.symbols.get(symbol) ?? schema.symbols.get(parent), `symbol ${symbol}`);
      break;
    }
    case "fileContainingExtension":
      // Funnel's schema declares no extensions of its messages.
      messageResponse = notFound(`extension ${question.value.containingType}/${question.value.extensionNumber}`);
      break;
    case "allExtensionNumbersOfType":
      messageResponse = schema.symbols.has(question.value)
        ? {
            case: "allExtensionNumbersResponse",
            value: { $typeName: "grpc.reflection.v1.ExtensionNumberResponse", baseTypeName: question.value, extensionNumber: [] },
          }
        : notFound(`type ${question.value}`);
      break;
    default:
      messageResponse = notFound("a question");
  }
  return create(ServerReflectionResponseSchema, { validHost: "", originalRequest: request, messageResponse });
}

/**
 * Registers gRPC server reflection (v1 and v1alpha, which differ only in
 * their package) on `router`, describing every service registered on it so
 * far and reflection itself. Register it last. The schema it reveals is the
 * public one in proto/, so it needs no token.
 */
export function registerReflection(router: ConnectRouter): void {
  const schema = indexSchema([...router.handlers.map((handler) => handler.service), ServerReflection, ServerReflectionAlpha]);
  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) yield answer(schema, request);
    },
  });
  // The same messages under another package: the answers are converted through their bytes.
  router.service(ServerReflectionAlpha, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        const asked = fromBinary(ServerReflectionRequestSchema, toBinary(ServerReflectionRequestAlphaSchema, request));
        yield fromBinary(ServerReflectionResponseAlphaSchema, toBinary(ServerReflectionResponseSchema, answer(schema, asked)));
      }
    },
  });
}
